"""The messaging keys of one component: where it subscribes, in which queue group, within which bounds.

Each key is read from the component's localResources.config first, then from the workload's
wasmcloud:messaging hostInterfaces entries (in order), as upstream reads them:

    subscriptions    comma-separated NATS subjects (wildcards `*` and a final `>` allowed)
    consumer_group   a NATS queue group; unset = "<namespace>.<replica group>.<component>",
                     where the replica group is the deployment the workload is a replica of
                     (bus/replica_groups.py), so the replicas of one deployment share each
                     message once; "broadcast" = a plain subscription (every replica gets
                     every message)
    max_in_flight    messages of this component handled at once on one host (default 32)
    admission_wait   how long a message waits for a free slot before it is dropped
                     (seconds, "500ms" or "2s" also accepted; default 30 s, at most 600 s)
    handler_timeout  wasmfleet extension: CPU deadline of one handle-message call (seconds;
                     default the host's request timeout)

Values are checked here, before anything is fetched: a bad one fails the workload start with a
message naming the key and where it came from. Pure functions, no NATS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KEYS = ("subscriptions", "consumer_group", "max_in_flight", "admission_wait", "handler_timeout")
BROADCAST = "broadcast"
DEFAULT_MAX_IN_FLIGHT = 32
"""Per component and host, as upstream."""
HOST_MAX_IN_FLIGHT = 128
"""Per host, every messaging component together, as upstream."""
MAX_IN_FLIGHT_LIMIT = 1024
DEFAULT_ADMISSION_WAIT_S = 30.0
MAX_ADMISSION_WAIT_S = 600.0
MAX_HANDLER_TIMEOUT_S = 600.0


class MessagingConfigError(ValueError):
    """A messaging key has a bad value; the message names the key and its source."""


@dataclass(frozen=True)
class Subscriptions:
    """What one component subscribes to, and its bounds (plain data: it crosses into workers)."""

    subjects: tuple[str, ...]
    queue: str | None
    """The queue group; None = broadcast (a plain subscription)."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    admission_wait_s: float = DEFAULT_ADMISSION_WAIT_S
    handler_timeout_s: float = 0.0
    """0 = the host's request timeout."""


_WHITESPACE = re.compile(r"\s")


def subject_problem(subject: str) -> str | None:
    """Why `subject` is not a NATS subject one may subscribe to (None when it is). On every
    publish of a guest, so the common case (no wildcard) is a few scans in C."""
    if not subject:
        return "empty subject"
    if _WHITESPACE.search(subject):
        return f"{subject!r} contains whitespace"
    if ".." in subject or subject[0] == "." or subject[-1] == ".":
        return f"{subject!r} has an empty token"
    if "*" in subject or ">" in subject:
        tokens = subject.split(".")
        for i, token in enumerate(tokens):
            if ("*" in token or ">" in token) and token not in ("*", ">"):
                return f"{subject!r}: wildcards must be whole tokens"
            if token == ">" and i != len(tokens) - 1:
                return f"{subject!r}: '>' must be the last token"
    return None


def publish_subject_problem(subject: str) -> str | None:
    """Why a message cannot be published to `subject` (no wildcards there)."""
    problem = subject_problem(subject)
    if problem is None and ("*" in subject or ">" in subject):  # whole tokens by now: wildcards
        return f"{subject!r}: cannot publish to a wildcard subject"
    return problem


def queue_problem(queue: str) -> str | None:
    if not queue:
        return "empty queue group name"
    if any(c.isspace() for c in queue) or "*" in queue or ">" in queue:
        return f"{queue!r} is not a valid queue group name (no whitespace, '*' or '>')"
    return None


def parse_duration(text: str) -> float:
    """"30", "2.5", "2s", "500ms" -> seconds; ValueError otherwise."""
    value = text.strip().lower()
    scale = 1.0
    if value.endswith("ms"):
        value, scale = value[:-2], 0.001
    elif value.endswith("s"):
        value = value[:-1]
    seconds = float(value) * scale
    if seconds != seconds or seconds < 0:  # NaN or negative
        raise ValueError(text)
    return seconds


def value_problems(config: Mapping[str, str]) -> list[str]:
    """"key: reason" for each messaging key of `config` with a bad value (unset keys are fine)."""
    problems = []
    subs = config.get("subscriptions")
    if subs is not None:
        subjects = [s.strip() for s in subs.split(",") if s.strip()]
        if not subjects:
            problems.append("subscriptions: no subject given")
        for subject in subjects:
            problem = subject_problem(subject)
            if problem:
                problems.append(f"subscriptions: {problem}")
    group = config.get("consumer_group")
    if group is not None and group != BROADCAST:
        problem = queue_problem(group)
        if problem:
            problems.append(f"consumer_group: {problem}")
    raw = config.get("max_in_flight")
    if raw is not None:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_IN_FLIGHT_LIMIT:
            problems.append(f"max_in_flight: {raw!r} is not a whole number from 1 to {MAX_IN_FLIGHT_LIMIT}")
    for key, limit in (("admission_wait", MAX_ADMISSION_WAIT_S), ("handler_timeout", MAX_HANDLER_TIMEOUT_S)):
        raw = config.get(key)
        if raw is None:
            continue
        try:
            seconds = parse_duration(raw)
        except ValueError:
            problems.append(f"{key}: {raw!r} is not a duration (seconds, or with s/ms)")
            continue
        if seconds > limit or (key == "handler_timeout" and seconds == 0):
            problems.append(f"{key}: {raw!r} is outside (0, {limit:g} s]" if key == "handler_timeout"
                            else f"{key}: {raw!r} is more than {limit:g} s")
    return problems


def default_queue(namespace: str, workload: str, component: str) -> str:
    """The queue group of a component that sets no consumer_group; `workload` is the replica group
    (the same for every replica of a deployment). Whitespace, '*' and '>' (which a queue name may
    not hold) become '_'."""
    parts = [p for p in (namespace, workload, component) if p]
    return ".".join("".join("_" if c.isspace() or c in "*>" else c for c in p) for p in parts) or "wasmfleet"


def resolve(local: Mapping[str, str], entries: Sequence[Mapping[str, str]], *, namespace: str,
            workload: str, component: str) -> Subscriptions | None:
    """The component's subscriptions (None when no source sets `subscriptions`).

    Raises MessagingConfigError naming the first bad key and where it was read from.
    """
    chosen: dict[str, str] = {}
    source: dict[str, str] = {}
    for key in KEYS:
        if key in local:
            chosen[key], source[key] = local[key], f"component {component} localResources.config"
            continue
        for entry in entries:
            if key in entry:
                chosen[key], source[key] = entry[key], "hostInterfaces entry wasmcloud:messaging config"
                break
    for problem in value_problems(chosen):
        key = problem.partition(":")[0]
        raise MessagingConfigError(f"{source[key]}.{problem}")
    if "subscriptions" not in chosen:
        return None
    group = chosen.get("consumer_group")
    queue = None if group == BROADCAST else (group or default_queue(namespace, workload, component))
    return Subscriptions(
        subjects=tuple(dict.fromkeys(s.strip() for s in chosen["subscriptions"].split(",") if s.strip())),
        queue=queue,
        max_in_flight=int(chosen.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
        admission_wait_s=parse_duration(chosen.get("admission_wait", str(DEFAULT_ADMISSION_WAIT_S))),
        handler_timeout_s=parse_duration(chosen["handler_timeout"]) if "handler_timeout" in chosen else 0.0,
    )
