"""`wasmfleet logs NAME`: what a workload's components printed on stdout/stderr.

The Workload objects come from the API server (like `get`): each says where it runs (status.hostId)
and under which id the host knows it (status.workloadId, else metadata.uid). The lines come from that
host over NATS (runtime.host.<hostID>.workload.logs, see docs/protocol.md), which keeps them in a
bounded file per workload. NAME may also be a WorkloadDeployment or WorkloadReplicaSet (or
`KIND/NAME`, e.g. `wd/hello`): then the lines of every Workload it owns, merged by time, each
prefixed with the Workload's name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import nats.errors

from wasmfleet.api import groups
from wasmfleet.bus import login_check, messages, permissions, requests, single_attempt, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.cli import resources_api as rapi
from wasmfleet.cli.nats_options import nats_connection_options
from wasmfleet.cli.resources_cmd import kubeconfig_option, kubeconfig_path
from wasmfleet.embedded import nats_auth

_OWNER_LABELS = {
    "WorkloadDeployment": groups.LABEL_WORKLOAD_DEPLOYMENT,
    "WorkloadReplicaSet": groups.LABEL_WORKLOAD_REPLICASET,
}


class LogsError(Exception):
    """One line for the user."""


@dataclass(frozen=True)
class Target:
    """A Workload whose logs to fetch."""

    name: str
    host_id: str
    workload_id: str
    components: int


def nats_url(explicit: str | None, data_dir: Path) -> str:
    """--nats, else $WASMFLEET_NATS_URL, else the NATS port `wasmfleet up` keeps in DATA_DIR/ports.json."""
    if explicit:
        return explicit
    env = os.environ.get("WASMFLEET_NATS_URL")
    if env:
        return env
    book = data_dir / "ports.json"
    try:
        port = int(json.loads(book.read_text())["nats"])
    except (OSError, ValueError, KeyError, TypeError):
        raise LogsError(f"no NATS URL: pass --nats URL (or run `wasmfleet up`, whose {book} names it)") from None
    return f"nats://127.0.0.1:{port}"


def since_time(text: str | None) -> datetime | None:
    """`--since 30s|5m|2h|1d` as an absolute time."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 5m, 2h or 1d", param_hint="--since")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return datetime.now(UTC) - timedelta(seconds=float(match.group(1)) * unit)


def _target(obj: rapi.Obj) -> Target | str:
    """The Target of a Workload object, or why it has none yet."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    name = str(meta.get("name"))
    host_id = status.get("hostId") or (obj.get("spec") or {}).get("hostId")
    if not host_id:
        return f"workload {name} is not placed on a host yet"
    workload_id = status.get("workloadId") or meta.get("uid") or ""
    components = len((obj.get("spec") or {}).get("components") or [])
    return Target(name, str(host_id), str(workload_id), components)


async def find_workloads(api: rapi.Api, name: str, namespace: str) -> tuple[str, list[rapi.Obj]]:
    """(what NAME turned out to be, its Workload objects). NAME is `NAME` or `KIND/NAME`."""
    catalog = await api.catalog()
    workloads = catalog.resolve("workloads")
    if "/" in name:
        kind_name, name = name.split("/", 1)
        kinds = [catalog.resolve(kind_name)]
        if kinds[0].kind not in ("Workload", *_OWNER_LABELS):
            raise LogsError(f"{kinds[0].qualified} has no logs: name a Workload, WorkloadDeployment or "
                            "WorkloadReplicaSet")
    else:
        kinds = [workloads, catalog.resolve("workloaddeployments"), catalog.resolve("workloadreplicasets")]
    for rt in kinds:
        status, obj = await api.request("GET", rt.path(namespace, name))
        if status == 404:
            continue
        if not 200 <= status < 300:
            raise LogsError(f"{rt.qualified}/{name}: {obj.get('message') or f'HTTP {status}'}")
        if rt.kind == "Workload":
            return f"workload {name}", [obj]
        selector = f"{_OWNER_LABELS[rt.kind]}={name}"
        listing = await api.call("GET", workloads.path(namespace), query=[("labelSelector", selector)])
        items = sorted(listing.get("items") or [], key=lambda o: str(o["metadata"]["name"]))
        if not items:
            raise LogsError(f"{rt.kind.lower()} {name} has no workloads yet")
        return f"{rt.kind.lower()} {name}", items
    what = kinds[0].kind.lower() if len(kinds) == 1 else "workload, workloaddeployment or workloadreplicaset"
    raise LogsError(f'no {what} "{name}" in namespace {namespace}')


async def fetch(
    nc: Any, target: Target, tail: int, since: datetime | None
) -> messages.WorkloadLogsResponse:
    request = messages.WorkloadLogsRequest(workload_id=target.workload_id, tail_lines=max(tail, 0),
                                           since_time=since)
    subject = subjects.workload_logs(target.host_id)
    try:
        return await requests.request(nc, subject, request, messages.WorkloadLogsResponse,
                                      timeout_s=subjects.TIMEOUTS_S[subjects.WORKLOAD_LOGS])
    except (requests.NoResponders, requests.RequestTimeout):
        raise LogsError(f"host {target.host_id} of workload {target.name} is not answering on NATS "
                        "(see `wasmfleet get hosts`)") from None
    except requests.RemoteError as exc:
        raise LogsError(f"workload {target.name}: host {target.host_id} says: {exc.reason}") from None
    except requests.BusError as exc:
        raise LogsError(f"workload {target.name}: {exc.reason}") from None


def nats_login(given: NatsConnectionOptions, data_dir: Path) -> NatsConnectionOptions:
    """The login options given (--nats-user, --nats-creds, ...), else the `logs` identity `wasmfleet up`
    keeps in DATA_DIR/nats/credentials.json, else none (an open NATS)."""
    if any(v is not None for v in (given.creds, given.user, given.token, given.nkey_seed)):
        return given
    try:
        login = nats_auth.read_login(data_dir, permissions.LOGS)
    except ValueError as exc:
        raise LogsError(str(exc)) from None
    if login is None:
        return given
    return dataclasses.replace(given, user=login.user, password=login.password)


async def connect(url: str, options: NatsConnectionOptions) -> Any:
    try:
        servers = [part.strip() for part in url.split(",") if part.strip()]  # a cluster: any of them
        return await single_attempt.connect_once(servers, connect_timeout=2, error_cb=_quiet,
                                                 **options.connect_kwargs())
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        reason = login_check.refusal(exc)
        if reason is not None:
            who, flags = login_check.describe_login(options)
            raise LogsError(f"NATS at {url} refused {who} ({reason}): check {flags}") from None
        raise LogsError(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from None


async def _quiet(_exc: Exception) -> None:
    return None  # connect() raises the failure; nats-py would also print a traceback


def render(line: messages.LogLine, prefix: str, timestamps: bool) -> str:
    parts = []
    if timestamps and line.time is not None:
        parts.append(line.time.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    if prefix:
        parts.append(f"[{prefix}]")
    parts.append(line.text)
    return " ".join(parts)


@click.command("logs")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of NAME.")
@click.option("--tail", type=int, default=-1, show_default=True,
              help="Newest lines per workload (-1: all the host keeps, up to 512 KiB per workload).")
@click.option("--since", "since", default=None, metavar="DURATION", help="Only lines newer than 30s, 5m, 2h, ...")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC 3339 time.")
@click.option("--nats", "nats_option", default=None, metavar="URL",
              help="NATS URL(s) of the fleet, comma-separated (default: $WASMFLEET_NATS_URL, else "
                   "DATA_DIR/ports.json of `wasmfleet up`).")
@kubeconfig_option
@nats_connection_options
def logs(name: str, namespace: str, tail: int, since: str | None, timestamps: bool, nats_option: str | None,
         kubeconfig: Path | None, data_dir: Path, nats_connection: NatsConnectionOptions) -> None:
    """Print what a workload's components wrote on stdout and stderr.

    NAME is a Workload, or a WorkloadDeployment / WorkloadReplicaSet (every Workload it owns, each line
    prefixed with the Workload's name); `KIND/NAME` (e.g. wd/hello) says which.

    \b
    Examples:
      wasmfleet logs hello-7f9c-x2k4l
      wasmfleet logs wd/hello --tail 20 --timestamps
    """
    after = since_time(since)
    config = kubeconfig_path(kubeconfig, data_dir)

    async def main() -> int:
        api = await rapi.Api.connect(config)
        try:
            what, objects = await find_workloads(api, name, namespace)
        finally:
            await api.close()
        targets = [_target(obj) for obj in objects]
        placed = [t for t in targets if isinstance(t, Target)]
        if not placed:
            raise LogsError(targets[0] if len(targets) == 1 else f"no workload of {what} is placed on a host yet")
        failed = 0
        for reason in targets:
            if isinstance(reason, str):
                click.echo(f"Error: {reason}", err=True)
                failed += 1
        url = nats_url(nats_option, data_dir)
        nc = await connect(url, nats_login(nats_connection, data_dir))
        try:
            answers = await asyncio.gather(*(fetch(nc, t, tail, after) for t in placed), return_exceptions=True)
        finally:
            await nc.close()
        if len(placed) == 1 and isinstance(answers[0], BaseException):
            raise answers[0]
        several = len(objects) > 1
        merged: list[tuple[datetime, int, str]] = []
        for index, (target, answer) in enumerate(zip(placed, answers, strict=True)):
            if isinstance(answer, LogsError):
                click.echo(f"Error: {answer}", err=True)
                failed += 1
                continue
            if isinstance(answer, BaseException):
                raise answer
            if answer.truncated:
                click.echo(f"({target.name}: older lines left out, the reply holds at most 512 KiB; "
                           "use --tail or --since)", err=True)
            for line in answer.lines if tail != 0 else []:
                prefix = target.name if several else ""
                if target.components > 1:
                    prefix = f"{prefix}/{line.component}" if prefix else line.component
                when = line.time or datetime.min.replace(tzinfo=UTC)
                merged.append((when, index, render(line, prefix, timestamps)))
        merged.sort(key=lambda item: (item[0], item[1]))  # stable: a workload's own order is kept
        for _, _, text in merged:
            click.echo(text)
        return 1 if failed else 0

    try:
        code = asyncio.run(main())
    except (LogsError, rapi.ApiError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
