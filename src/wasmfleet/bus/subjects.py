"""NATS subjects of the operator <-> host protocol (wasmCloud v2 compatible).

Pure functions, no connection objects: both the operator and the host build their subjects here so
the two sides can never drift apart. docs/protocol.md describes what travels on each subject.

    runtime.operator.heartbeat.<hostID>     host publishes HostHeartbeat periodically
    runtime.operator.leaving.<hostID>       host publishes a last HostHeartbeat when it shuts down
                                            (wasmfleet extension; upstream operators ignore it)
    runtime.host.<hostID>.heartbeat         request {} -> HostHeartbeat
    runtime.host.<hostID>.workload.start    request WorkloadStartRequest -> WorkloadStartResponse
    runtime.host.<hostID>.workload.status   request WorkloadStatusRequest -> WorkloadStatusResponse
    runtime.host.<hostID>.workload.stop     request WorkloadStopRequest -> WorkloadStopResponse
    runtime.host.<hostID>.workload.logs     request WorkloadLogsRequest -> WorkloadLogsResponse
                                            (wasmfleet extension: a workload's guest stdout/stderr)
"""

from __future__ import annotations

import re

OPERATOR_PREFIX = "runtime.operator"
HOST_PREFIX = "runtime.host"

# Commands a host answers, as the last tokens of runtime.host.<hostID>.<command>.
HEARTBEAT = "heartbeat"
WORKLOAD_START = "workload.start"
WORKLOAD_STATUS = "workload.status"
WORKLOAD_STOP = "workload.stop"
WORKLOAD_LOGS = "workload.logs"
COMMANDS = (HEARTBEAT, WORKLOAD_START, WORKLOAD_STATUS, WORKLOAD_STOP, WORKLOAD_LOGS)

# Upstream's request timeouts (seconds) per command, for reference and for `wasmfleet logs`. The
# operator's own are operator.settings.Reconciling's (start 60 s, status 5 s, stop 10 s).
TIMEOUTS_S = {HEARTBEAT: 5.0, WORKLOAD_START: 60.0, WORKLOAD_STATUS: 5.0, WORKLOAD_STOP: 30.0, WORKLOAD_LOGS: 10.0}

# A host ID becomes one subject token: no dots, spaces or wildcards (NATS would split or match on them).
_TOKEN = re.compile(r"^[^.\s*>]+$")


class InvalidHostId(ValueError):
    """The host ID cannot be used as a single NATS subject token."""


def check_host_id(host_id: str) -> str:
    if not _TOKEN.match(host_id):
        raise InvalidHostId(
            f"host id {host_id!r} cannot be a NATS subject token (no dots, spaces, '*' or '>')"
        )
    return host_id


def operator_heartbeat(host_id: str) -> str:
    """Where a host publishes its periodic HostHeartbeat."""
    return f"{OPERATOR_PREFIX}.heartbeat.{check_host_id(host_id)}"


def operator_heartbeats() -> str:
    """Wildcard the operator subscribes to for every host's heartbeats."""
    return f"{OPERATOR_PREFIX}.heartbeat.*"


def operator_leaving(host_id: str) -> str:
    """Where a host announces, once, that it is shutting down (wasmfleet extension)."""
    return f"{OPERATOR_PREFIX}.leaving.{check_host_id(host_id)}"


def operator_leavings() -> str:
    """Wildcard the operator subscribes to for shutdown announcements."""
    return f"{OPERATOR_PREFIX}.leaving.*"


def host_command(host_id: str, command: str) -> str:
    if command not in COMMANDS:
        raise ValueError(f"unknown host command {command!r}; expected one of {', '.join(COMMANDS)}")
    return f"{HOST_PREFIX}.{check_host_id(host_id)}.{command}"


def host_heartbeat(host_id: str) -> str:
    return host_command(host_id, HEARTBEAT)


def workload_start(host_id: str) -> str:
    return host_command(host_id, WORKLOAD_START)


def workload_status(host_id: str) -> str:
    return host_command(host_id, WORKLOAD_STATUS)


def workload_stop(host_id: str) -> str:
    return host_command(host_id, WORKLOAD_STOP)


def workload_logs(host_id: str) -> str:
    return host_command(host_id, WORKLOAD_LOGS)


def host_commands(host_id: str) -> str:
    """Wildcard a host subscribes to: every command addressed to it, known or not (so an unknown
    command still gets an error reply instead of silence)."""
    return f"{HOST_PREFIX}.{check_host_id(host_id)}.>"


def host_id_from_operator_subject(subject: str) -> str | None:
    """The host ID in runtime.operator.heartbeat.<id> / runtime.operator.leaving.<id>, else None."""
    parts = subject.split(".")
    if len(parts) == 4 and parts[0] == "runtime" and parts[1] == "operator" and parts[2] in (
        "heartbeat",
        "leaving",
    ):
        return parts[3]
    return None


def command_from_host_subject(subject: str, host_id: str) -> str:
    """The command part of runtime.host.<hostID>.<command...> ('' when the subject is not ours)."""
    prefix = f"{HOST_PREFIX}.{host_id}."
    return subject[len(prefix):] if subject.startswith(prefix) else ""


HOST_INBOX_PREFIX = "_HOSTINBOX"
"""Where a host's own request replies arrive: `_HOSTINBOX.<hostID>.<...>`, never under `_INBOX.>`.

A host's control connection requests nothing of other clients; its only requests are JetStream API
calls to read artifacts from the Object Store (bus.permissions.ARTIFACTS_BUCKET). Giving them a
per-host prefix outside `_INBOX.>` lets its identity subscribe to its own replies and to nothing
that the operator or the `logs` CLI receive, and keeps other identities from reading its deliveries."""


def host_inbox(host_id: str) -> str:
    """The inbox prefix of a host's control connection (nats-py `inbox_prefix`)."""
    return f"{HOST_INBOX_PREFIX}.{check_host_id(host_id)}"
