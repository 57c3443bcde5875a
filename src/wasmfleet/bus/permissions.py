"""Who may publish and subscribe to what on NATS: the one permission table of a wasmfleet fleet.

`wasmfleet up` renders it into the nats-server configuration it writes (embedded/nats_auth.py) and
docs/security.md describes it. Upstream has no per-subject permissions at all (anyone who can publish
on runtime.host.<id>.> starts workloads); here every role gets only what its code uses:

    operator (CONTROL)  publish   runtime.host.*.>
                        subscribe runtime.operator.heartbeat.*, runtime.operator.leaving.*, _INBOX.>
    host-<id> (CONTROL) publish   runtime.operator.heartbeat.<id>, runtime.operator.leaving.<id>,
                                  and one reply to each request it received (allow_responses)
                        subscribe runtime.host.<id>.>
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

The gateway uses no NATS (it reads Hosts and Workloads from the API server), so it has no identity.

The Helm chart (deploy/chart) cannot give each host its own identity: a Deployment's pods share one
client certificate and learn their names only when they start, and nats-server's static
configuration has no per-connection permission templates (those exist only for JWT users). So the
chart's table, `role_table()`, has one `host` identity for every host: the same publish rights, but
subscribe on runtime.host.*.>. It is rendered into deploy/chart/files/nats-permissions.json by
scripts/chart_permissions.py (a test fails when the two differ).
Pure data, no connection objects: callers render it (nats-server config) or check against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wasmfleet.bus import subjects

CONTROL_ACCOUNT = "CONTROL"
"""Operator, hosts and the CLI: the runtime.> protocol. No JetStream (nothing on it uses one)."""
DATA_ACCOUNT = "DATA"
"""Workloads' data plane: JetStream key-value and object stores, messaging."""

INBOX = "_INBOX.>"
"""Where nats-py's request replies arrive (its default inbox prefix)."""

OPERATOR = "operator"
LOGS = "logs"
DATA = "data"
HOST_PREFIX = "host-"
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
        publish=(f"{subjects.HOST_PREFIX}.*.>",),
        subscribe=(subjects.operator_heartbeats(), subjects.operator_leavings(), INBOX),
    )


def host(host_id: str) -> Permissions:
    """Announces itself and answers what it is asked; hears only commands addressed to it."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(subjects.operator_heartbeat(host_id), subjects.operator_leaving(host_id)),
        subscribe=(subjects.host_commands(host_id),),
        allow_responses=True,
    )


def host_user(host_id: str) -> str:
    """The user name of a host's identity (one per host ID)."""
    return HOST_PREFIX + subjects.check_host_id(host_id)


def any_host() -> Permissions:
    """Every host under one identity: a host's rights, but it hears every host's commands."""
    return Permissions(
        account=CONTROL_ACCOUNT,
        publish=(subjects.operator_heartbeats(), subjects.operator_leavings()),
        subscribe=(f"{subjects.HOST_PREFIX}.*.>",),
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
