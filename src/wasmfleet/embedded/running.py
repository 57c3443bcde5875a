"""`wasmfleet up` as a function: claim DATA_DIR, start the fleet, print where things are, run until a
signal, stop in order. The CLI only parses options and prints errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from wasmfleet.embedded import fleet, ports, supervising

Report = Callable[[str], None]


class AlreadyRunning(RuntimeError):
    pass


def _claim(data_dir: Path) -> Path:
    """One `up` per DATA_DIR: a second one would fight over ports and the SQLite file."""
    pid_path = data_dir / "up.pid"
    with contextlib.suppress(OSError, ValueError):
        other = int(pid_path.read_text().strip())
        if other != os.getpid():
            try:
                os.kill(other, 0)
            except ProcessLookupError:
                pass
            except PermissionError:
                raise AlreadyRunning(f"wasmfleet up is already running for {data_dir} (pid {other})") from None
            else:
                raise AlreadyRunning(f"wasmfleet up is already running for {data_dir} (pid {other})")
    pid_path.write_text(str(os.getpid()))
    return pid_path


def summary(options: fleet.FleetOptions, endpoints: fleet.Endpoints, children: Sequence[supervising.Child],
            missing: Sequence[str]) -> list[str]:
    kubeconfig = options.data_dir / "kubeconfig"
    lines = ["", "wasmfleet is up:"]
    for child in children:
        lines.append(f"  {child.name:<22} {child.describe}")
    if missing:
        lines.append(f"  (not started, this build has no command for: {', '.join(missing)})")
    lines += [
        "",
        "Use it:",
        f"  export KUBECONFIG={kubeconfig}",
        "  kubectl get hosts",
        "  wasmfleet apply -f examples/hello/deployment.yaml",
        f"  curl -H 'Host: hello.localhost' {endpoints.gateway_url}/",
        f"  (or: curl http://hello.localhost:{endpoints.gateway_url.rsplit(':', 1)[1]}/ — *.localhost is loopback)",
        *([f"  open {endpoints.dashboard_url}/   (the dashboard: hosts, workloads, placement, traffic)"]
          if endpoints.dashboard_url and any(c.name == "dashboard" for c in children) else []),
        "",
        f"Logs: {options.data_dir / 'logs'}/   State: {options.data_dir}/ (rerun `wasmfleet up` to resume)",
        f"NATS needs a login (users and passwords of this run: {options.data_dir / 'nats' / 'credentials.json'});",
        f"  /metrics a bearer token: {options.data_dir / 'metrics-token'} (see docs/security.md)",
        "Ctrl-C stops everything.",
    ]
    return lines


AfterStart = Callable[[fleet.Endpoints], Coroutine[Any, Any, None]]


async def run(options: fleet.FleetOptions, available: Sequence[str], report: Report,
              stop: asyncio.Event | None = None, after_start: AfterStart | None = None) -> None:
    """Run the fleet until SIGINT/SIGTERM or ``stop``; raises StartError or AlreadyRunning.

    ``after_start`` runs once everything is ready (e.g. applying the example); its failure is reported,
    the fleet keeps running."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    pid_path = _claim(options.data_dir)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        book = ports.PortBook(options.data_dir / "ports.json")
        endpoints = fleet.Endpoints.allocate(options, book)
        book.save()
        if endpoints.gateway_url != f"http://127.0.0.1:{options.gateway_port}":
            report(f"port {options.gateway_port} is taken; the gateway uses {endpoints.gateway_url}")
        if endpoints.dashboard_url != f"http://127.0.0.1:{options.dashboard_port}":
            report(f"port {options.dashboard_port} is taken; the dashboard uses {endpoints.dashboard_url}")
        wanted = ["apiserver", "operator", "host", "gateway", "dashboard"]
        missing = [c for c in wanted if c not in available]
        security = fleet.Security.generate(options, int(endpoints.nats_url.rsplit(":", 1)[1]))
        (options.data_dir / "host-paths").mkdir(exist_ok=True)
        children = fleet.plan(options, endpoints, available, security)
        supervisor = supervising.Supervisor(
            children, report=report, state_path=options.data_dir / "children.json"
        )
        starting = asyncio.create_task(supervisor.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Ctrl-C while starting: stop what has started.
            starting.cancel()
            await asyncio.wait({starting})  # its own clean-up stops the children it started
            await supervisor.stop()
            return
        stopped.cancel()
        starting.result()  # raises StartError
        for line in summary(options, endpoints, children, missing):
            report(line)
        extra: asyncio.Task[None] | None = None
        if after_start is not None:
            extra = asyncio.create_task(after_start(endpoints))
        try:
            await stop.wait()
        finally:
            if extra is not None:
                extra.cancel()
                await asyncio.wait({extra}, timeout=2)
            report("stopping the fleet ...")
            await supervisor.stop()
            report("stopped; state kept in " + str(options.data_dir))
    finally:
        with contextlib.suppress(OSError):
            pid_path.unlink()
