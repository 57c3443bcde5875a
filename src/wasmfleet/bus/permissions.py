"""Who may publish and subscribe to what on NATS: the one permission table of a wasmfleet fleet.

`wasmfleet up` renders it into the nats-server configuration it writes (embedded/nats_auth.py) and
docs/security.md describes it. Upstream has no per-subject permissions at all (anyone who can publish
on runtime.host.<id>.> starts workloads); here every role gets only what its code uses:

    operator (CONTROL)  publish   runtime.host.*.>, and the artifacts bucket's JetStream API and $O subjects
                        subscribe runtime.operator.heartbeat.*, runtime.operator.leaving.*, _INBOX.>
    host-<id> (CONTROL) publish   runtime.operator.heartbeat.<id>, runtime.operator.leaving.<id>,
                                  one reply to each request it received (allow_responses),
                                  and what reading an object of the artifacts bucket takes
                        subscribe runtime.host.<id>.>, _HOSTINBOX.<id>.>
    logs (CONTROL)      publish   runtime.host.*.workload.logs
                        subscribe _INBOX.>
    data (DATA)         publish and subscribe anything but runtime.>

A host's identity names its own host ID, so one host (or whoever holds its password) can neither
command another host nor read another host's commands, and it answers only requests it was sent
(nats-server's allow_responses), never arbitrary inboxes: it cannot forge another host's replies.

The data plane (workloads' keyvalue, blobstore and messaging: JetStream `$JS.API.>`, `$KV.>`, `$O.>`,
user subjects) lives in its own account. Accounts are separate subject spaces, which matters beyond
publish rules: a data client could otherwise create a JetStream stream capturing runtime.> and read
every command (with its image-pull secrets) back from the stream. runtime.> is also denied to the data
identity inside its account, so a mistaken publish is refused rather than silently lost.

The Artifact controller's Object Store bucket (`wasmfleet-artifacts`, stream OBJ_wasmfleet-artifacts)
lives in the CONTROL account, which has JetStream for it alone (`CONTROL_JETSTREAM`: one stream, no
memory storage). Not in DATA: every workload shares the data identity, and could then delete, replace
or mirror (and so read) the components of every tenant. In CONTROL, the operator may create that one
stream and nothing else (`$JS.API.STREAM.CREATE.OBJ_wasmfleet-artifacts`: no identity can create a
stream capturing runtime.>), write and delete its objects; a host may only read them: stream info,
get an object's metadata message, and create a pull consumer on one object's chunks
(`$JS.API.CONSUMER.CREATE.OBJ_wasmfleet-artifacts.*.$O.wasmfleet-artifacts.C.*`) and pull from it. A
host cannot put, delete or purge objects, nor create or change any stream. Its API replies and pulled
chunks arrive on its own inbox prefix, _HOSTINBOX.<id> (bus.subjects.host_inbox), which no other
identity may subscribe to. A component's bytes are verified against the digest in its URL anyway.

The gateway uses no NATS (it reads Hosts and Workloads from the API server), so it has no identity.

The Helm chart (deploy/chart) cannot give each host its own identity: a Deployment's pods share one
client certificate and learn their names only when they start, and nats-server's static
configuration has no per-connection permission templates (those exist only for JWT users). So the
chart's table, `role_table()`, has one `host` identity for every host: the same publish rights, but
subscribe on runtime.host.*.> and _HOSTINBOX.*.>. It is rendered into deploy/chart/files/nats-permissions.json by
scripts/chart_permissions.py (a test fails when the two differ).
Pure data, no connection objects: callers render it (nats-server config) or check against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wasmfleet.bus import subjects

CONTROL_ACCOUNT = "CONTROL"
"""Operator, hosts and the CLI: the runtime.> protocol, and the artifacts bucket's one stream."""
CONTROL_JETSTREAM: dict[str, int] = {"max_streams": 1, "max_mem": 0}
"""The CONTROL account's JetStream limits (nats-server account `jetstream` block): room for the
artifacts bucket's stream and no other, file storage only. Permissions already allow only that
stream's creation; the limit holds even if a permission were widened by mistake."""
DATA_ACCOUNT = "DATA"
"""Workloads' data plane: JetStream key-value and object stores, messaging."""

INBOX = "_INBOX.>"
"""Where nats-py's request replies arrive (its default inbox prefix)."""

OPERATOR = "operator"
LOGS = "logs"
DATA = "data"
HOST_PREFIX = "host-"
ARTIFACTS_BUCKET = "wasmfleet-artifacts"
"""The JetStream Object Store bucket the Artifact controller publishes components to."""
JS_API = "$JS.API"

HOSTS = "host"
"""The one identity every host of a chart-installed fleet shares (`role_table`)."""


@dataclass(frozen=True)
class Permissions:
    """One identity's rights; a deny wins over an allow (nats-server's rule)."""

    account: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    publish_deny: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()
    allow_responses: bool = False
    """May publish one reply to the reply subject of each request it received (and nothing else
    on inboxes)."""

    def to_server_config(self) -> dict[str, Any]:
        """The `permissions` block of a nats-server user, as JSON-compatible data."""
        block: dict[str, Any] = {}
        publish: dict[str, list[str]] = {}
        if self.publish:
            publish["allow"] = list(self.publish)
        if self.publish_deny:
            publish["deny"] = list(self.publish_deny)
        if not publish:
            publish["deny"] = [">"]  # nothing at all (allow_responses still lets it reply)
        block["publish"] = publish
        subscribe: dict[str, list[str]] = {}
        if self.subscribe:
            subscribe["allow"] = list(self.subscribe)
        if self.subscribe_deny:
            subscribe["deny"] = list(self.subscribe_deny)
        if not subscribe:
            subscribe["deny"] = [">"]
        block["subscribe"] = subscribe
        if self.allow_responses:
            block["allow_responses"] = True
        return block


def operator() -> Permissions:
    """Commands every host, hears heartbeats and leave announcements, gets replies."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(f"{subjects.HOST_PREFIX}.*.>", *artifacts_publisher()),
        subscribe=(subjects.operator_heartbeats(), subjects.operator_leavings(), INBOX),
    )


def artifacts_stream(bucket: str = ARTIFACTS_BUCKET) -> str:
    """The JetStream stream holding an Object Store bucket (NATS ADR-20: OBJ_<bucket>)."""
    return f"OBJ_{bucket}"


def artifacts_publisher(bucket: str = ARTIFACTS_BUCKET) -> tuple[str, ...]:
    """What the Artifact controller's Object Store calls publish (nats-py 2.x `object_store`,
    `create_object_store`, ObjectStore get_info/put/delete/list): create and read the bucket's stream,
    write chunks and metadata, purge a replaced or deleted object's chunks, and list through an
    ordered consumer (created, deleted on reset, flow-controlled; nats-py first looks its stream up
    by subject with STREAM.NAMES, which lists only names, and CONTROL has one stream). Replies come
    on _INBOX.>."""
    stream = artifacts_stream(bucket)
    return (
        f"{JS_API}.STREAM.NAMES",
        f"{JS_API}.STREAM.CREATE.{stream}",
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.STREAM.PURGE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}",  # an unnamed (ordered) consumer
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.FC.{stream}.>",
        f"$O.{bucket}.>",
    )


def artifacts_reader(bucket: str = ARTIFACTS_BUCKET) -> tuple[str, ...]:
    """What a host's download of one object takes (artifacts.object_store.download): the bucket's
    stream info, the object's metadata message, a pull consumer on that object's chunk subject
    ($O.<bucket>.C.<nuid>; nats-server refuses a consumer whose filter differs from the subject),
    and pulls from it. No stream creation, no $O publish, no purge, no consumer deletion (the
    consumer expires by its inactive_threshold)."""
    stream = artifacts_stream(bucket)
    return (
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.*.$O.{bucket}.C.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
    )


def host(host_id: str) -> Permissions:
    """Announces itself and answers what it is asked; hears only commands addressed to it."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(subjects.operator_heartbeat(host_id), subjects.operator_leaving(host_id), *artifacts_reader()),
        subscribe=(subjects.host_commands(host_id), f"{subjects.host_inbox(host_id)}.>"),
        allow_responses=True,
    )


def host_user(host_id: str) -> str:
    """The user name of a host's identity (one per host ID)."""
    return HOST_PREFIX + subjects.check_host_id(host_id)


def any_host() -> Permissions:
    """Every host under one identity: a host's rights, but it hears every host's commands."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(subjects.operator_heartbeats(), subjects.operator_leavings(), *artifacts_reader()),
        subscribe=(f"{subjects.HOST_PREFIX}.*.>", f"{subjects.HOST_INBOX_PREFIX}.*.>"),
        allow_responses=True,
    )


def logs() -> Permissions:
    """`wasmfleet logs`: asks any host for a workload's guest output, nothing else."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(f"{subjects.HOST_PREFIX}.*.{subjects.WORKLOAD_LOGS}",),
        subscribe=(INBOX,),
    )


def data() -> Permissions:
    """Workloads' keyvalue, blobstore and messaging, in their own account, never runtime.>."""
    control = f"{subjects.HOST_PREFIX.split('.')[0]}.>"  # runtime.>
    return Permissions(
        account=DATA_ACCOUNT,
        publish=(">",),
        subscribe=(">",),
        publish_deny=(control,),
        subscribe_deny=(control,),
    )


def table(host_ids: list[str]) -> dict[str, Permissions]:
    """Every identity of a fleet with these hosts: user name -> permissions."""
    users = {OPERATOR: operator(), LOGS: logs(), DATA: data()}
    for host_id in host_ids:
        users[host_user(host_id)] = host(host_id)
    return users


def role_table() -> dict[str, Permissions]:
    """Every identity of a fleet whose hosts share one identity (the Helm chart): user -> permissions."""
    return {OPERATOR: operator(), HOSTS: any_host(), LOGS: logs(), DATA: data()}
