"""`wasmfleet run COMPONENT [ARGS...]`: run a command component once, the way `wasmtime run` does.

The guest gets ARGS (argv[0] is the component's file name, like wasmtime), the `--env` variables
only (none inherited unless named: `--env NAME`), the `--dir` preopens, and this process's stdin,
stdout and stderr. The process exits with the guest's exit code (wasi:cli/exit; run returning
err is 1; a trap is 134 with the reason on stderr). It links like a host does (runtime.commands:
the same engine, cache, grants and WASI), so the WASI core is granted and anything else needs
`--grant`. wasi:sockets is granted like on hosts: the run gets its own private loopback (a
temporary directory removed afterwards; binds to 0.0.0.0 or 127.0.0.1 land there, so nothing
outside the run can connect), and other addresses need `--allow-host` (as allowedHosts).
Ctrl-C / SIGTERM cancel the guest (exit 130).

A component that cannot run (missing file, not a component, no wasi:cli/run export, an import
the host lacks) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from wasmfleet.host.runtime import commands, errors, specs

USAGE_EXIT = 2
CANCELLED_EXIT = 130


def _environment(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"expected NAME=VALUE or NAME, got {item!r}", param_hint="--env")
        if sep:
            out[key] = value
        elif key in os.environ:  # `--env NAME`: this process's value, as in wasmtime
            out[key] = os.environ[key]
    return out


def _grants(values: tuple[str, ...], allow_hosts: tuple[str, ...]) -> tuple[specs.Grant, ...]:
    grants = []
    for item in values:
        base, _, version = item.partition("@")
        ns, sep, rest = base.partition(":")
        pkg, _, iface = rest.partition("/")
        if not sep or not ns or not pkg:
            raise click.BadParameter(f"expected NS:PKG[/IFACE][@VERSION], got {item!r}", param_hint="--grant")
        grants.append(specs.Grant(ns, pkg, (iface,) if iface else (), version or None))
    if allow_hosts:
        grants.append(specs.Grant("wasi", "http", ("outgoing-handler",)))
    return tuple(grants)


def _preopens(values: tuple[str, ...], read_only: bool, option: str) -> list[specs.Preopen]:
    out = []
    for item in values:
        host, sep, guest = item.partition("::")
        if not host or (sep and not guest):
            raise click.BadParameter(f"expected HOST::GUEST or PATH, got {item!r}", param_hint=option)
        if not Path(host).is_dir():
            raise click.BadParameter(f"{host} is not a directory", param_hint=option)
        out.append(specs.Preopen(Path(host), guest if sep else host, read_only))
    return out


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("component", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--env", "env", multiple=True, metavar="NAME[=VALUE]",
              help="Environment variable for the guest (NAME alone: this process's value).")
@click.option("--dir", "dirs", multiple=True, metavar="HOST::GUEST",
              help="Preopen HOST as GUEST (PATH alone: the same path in both).")
@click.option("--dir-ro", "dirs_ro", multiple=True, metavar="HOST::GUEST",
              help="Preopen read-only (writes fail with read-only).")
@click.option("--grant", "grants", multiple=True, metavar="NS:PKG[/IFACE]", help="Grant a host interface.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Allow outgoing HTTP and sockets to HOST (name, address or pattern; * = any); "
                   "grants outgoing-handler.")
@click.option("--memory-limit-mb", type=click.IntRange(min=1), default=512, show_default=True,
              help="Linear memory limit.")
@click.option("--cpu-limit", type=click.IntRange(min=0), default=0, show_default=True, metavar="MILLICORES",
              help="CPU quota of the guest's thread in millicores (1000 = one core; 0: none).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Compiled component cache.")
def run(component: Path, args: tuple[str, ...], env: tuple[str, ...], dirs: tuple[str, ...],
        dirs_ro: tuple[str, ...], grants: tuple[str, ...], allow_hosts: tuple[str, ...],
        memory_limit_mb: int, cpu_limit: int, cache_dir: Path | None) -> None:
    """Run a command component (wasi:cli/run) with ARGS; exit with its exit code.

    \b
    Example:
        wasmfleet run --dir data::/data --env GREETING=hi tool.wasm --verbose input.txt"""
    with commands.private_loopback_dir() as loopback:
        spec = specs.ComponentSpec(
            workload_id="run",
            name=component.stem,
            wasm_path=component.resolve(),
            grants=_grants(grants, allow_hosts),
            environment=_environment(env),
            allowed_hosts=allow_hosts,
            network=specs.NetworkAccess(loopback_dir=loopback),
            preopens=tuple(_preopens(dirs, False, "--dir") + _preopens(dirs_ro, True, "--dir-ro")),
            memory_limit_mb=memory_limit_mb,
            cpu_limit_millicores=cpu_limit,
        )
        engine = specs.EngineSettings.from_environment(os.environ)
        settings = (specs.RuntimeSettings(cache_dir=cache_dir, engine=engine) if cache_dir
                    else specs.RuntimeSettings(engine=engine))
        try:
            command = commands.Command(spec, settings)
        except errors.ComponentError as exc:
            click.echo(f"wasmfleet run: error: {exc}", err=True)
            sys.exit(USAGE_EXIT)
        try:
            outcome = _run_cancellable(command, [component.name, *args])
        finally:
            command.close()
        if outcome.cancelled:
            sys.exit(CANCELLED_EXIT)
        if outcome.trap is not None:
            click.echo(f"wasmfleet run: {component.name} trapped: {outcome.trap}", err=True)
        sys.exit(outcome.exit_code)


def _run_cancellable(command: commands.Command, argv: list[str]) -> commands.Outcome:
    """Runs the guest on a thread so this (main) thread can turn SIGINT/SIGTERM into a cancel."""
    cancel = commands.Cancel()
    result: list[commands.Outcome] = []
    thread = threading.Thread(
        target=lambda: result.append(command.run(argv, commands.CommandStdio.of_process(), cancel)),
        name="wasm-command",
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: cancel.cancel())
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if not result:  # the thread died of a Python error: a bug, reported as a trap would be
        return commands.Outcome(commands.TRAP_EXIT_CODE, "internal error (see the log)")
    return result[0]
