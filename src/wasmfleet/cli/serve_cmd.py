"""`wasmfleet serve COMPONENT.wasm`: serve one wasi:http component locally (dev mode).

Like `wasmtime serve`: every Host is routed to the component. wasi:config/store (values from
`--config`, then `--env`), wasi:logging/logging (to stderr), wasi:keyvalue (in memory, or where
`--keyvalue` points: NATS, Redis or a directory) and wasi:blobstore (in memory, or where
`--blobstore` points: NATS or a directory) are granted, like `wash dev`; other interfaces beyond the
WASI core are denied unless granted; `--allow-host` grants wasi:http/outgoing-handler for those
hosts. The keyvalue and blobstore grants are unnamed hostInterfaces entries with the config the
operator path would send, so the plugins and their checks are the same as on a fleet host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import click

from wasmfleet.host.runtime import commands, errors, specs
from wasmfleet.host.runtime.server import WasmServer


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def _preopens(values: tuple[str, ...]) -> tuple[specs.Preopen, ...]:
    out = []
    for item in values:
        parts = item.split(":")
        read_only = len(parts) == 3 and parts[2] == "ro"
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or (len(parts) == 3 and not read_only):
            raise click.BadParameter(f"expected HOST:GUEST[:ro], got {item!r}", param_hint="--dir")
        host = Path(parts[0])
        if not host.is_dir():
            raise click.BadParameter(f"{host} is not a directory", param_hint="--dir")
        out.append(specs.Preopen(host, parts[1], read_only))
    return tuple(out)


DEV_GRANTS = (specs.Grant("wasi", "config", ("store",)), specs.Grant("wasi", "logging", ("logging",)))
"""Granted by `serve` without asking: a component's config and logs are what dev mode is for."""

KEYVALUE_INTERFACES = ("store", "atomics", "batch")
BLOBSTORE_INTERFACES = ("blobstore", "container", "types")


def backend_config(value: str, option: str, redis: bool) -> dict[str, str]:
    """The hostInterfaces entry config of `--keyvalue` or `--blobstore`: memory (the default),
    nats://... (tls://, ws://, wss://), redis://... (rediss://, unix://; `redis` only) or dir:PATH."""
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if value in ("", "memory", "in-memory"):
        return {"backend": "in-memory"}
    if scheme in ("nats", "tls", "ws", "wss"):
        return {"backend": "nats", "url": value}
    if redis and scheme in ("redis", "rediss", "unix"):
        return {"backend": "redis", "url": value}
    if value.startswith("dir:") and len(value) > 4:
        return {"backend": "filesystem", "root": str(Path(value[4:]).absolute())}
    choices = "memory, nats://HOST:PORT, " + ("redis://HOST:PORT or dir:PATH" if redis else "or dir:PATH")
    raise click.BadParameter(f"expected {choices}, got {value!r}", param_hint=option)


def _grants(values: tuple[str, ...], allow_hosts: tuple[str, ...], keyvalue: str = "",
            blobstore: str = "") -> tuple[specs.Grant, ...]:
    grants = list(DEV_GRANTS)
    grants.append(specs.Grant("wasi", "keyvalue", KEYVALUE_INTERFACES, "0.2.0-draft",
                              config=backend_config(keyvalue, "--keyvalue", redis=True)))
    grants.append(specs.Grant("wasi", "blobstore", BLOBSTORE_INTERFACES, "0.2.0-draft",
                              config=backend_config(blobstore, "--blobstore", redis=False)))
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


def _show_guest_output() -> None:
    """The guest's stdout/stderr lines and wasi:logging records, on stderr, one line each."""
    guest = logging.getLogger("wasmfleet.guest")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    guest.addHandler(handler)
    guest.setLevel(logging.DEBUG)
    guest.propagate = False


def _addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--addr")
    return (host.strip("[]") or "0.0.0.0"), int(port)


@click.command()
@click.argument("component", type=click.Path(path_type=Path))
@click.option("--addr", default="0.0.0.0:8080", show_default=True, help="Address to listen on (HOST:PORT).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes sharing the port (one per core scales CPU-bound guests).")
@click.option("--config", "config", multiple=True, metavar="K=V", help="Component config value.")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Environment variable for the guest.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Allow outgoing HTTP to HOST (pattern, '*' = any); grants outgoing-handler.")
@click.option("--dir", "dirs", multiple=True, metavar="HOST:GUEST[:ro]", help="Preopen a directory.")
@click.option("--grant", "grants", multiple=True, metavar="NS:PKG[/IFACE]", help="Grant a host interface.")
@click.option("--keyvalue", default="memory", show_default=True, metavar="memory|nats://..|redis://..|dir:PATH",
              help="Where wasi:keyvalue buckets live: in this process's memory, NATS JetStream KV (a bucket per "
                   "identifier, created on demand), Redis (keys prefixed '<identifier>:') or a directory "
                   "(a subdirectory per identifier).")
@click.option("--blobstore", default="memory", show_default=True, metavar="memory|nats://..|dir:PATH",
              help="Where wasi:blobstore containers live: in this process's memory, the NATS JetStream "
                   "Object Store (a bucket per container) or a directory (a subdirectory per container).")
@click.option("--pool-size", type=click.IntRange(min=0), default=0, show_default=True,
              help="Warm instances kept for reuse (0 = fresh instance per request).")
@click.option("--max-invocations", type=click.IntRange(min=0), default=0, help="Retire a warm instance after N calls.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True,
              help="Per-request deadline in seconds (-> 504).")
@click.option("--memory-limit-mb", type=click.IntRange(min=1), default=512, show_default=True,
              help="Linear memory limit per instance.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Compiled component cache.")
def serve(component: Path, addr: str, workers: int, config: tuple[str, ...], env: tuple[str, ...],
          allow_hosts: tuple[str, ...], dirs: tuple[str, ...], grants: tuple[str, ...], keyvalue: str, blobstore: str,
          pool_size: int, max_invocations: int, timeout_s: float, memory_limit_mb: int, cache_dir: Path | None) -> None:
    """Serve a wasi:http component over HTTP (development mode).

    \b
    Example:
        wasmfleet serve hello.wasm --addr 127.0.0.1:8080 --workers 2 --config host=hello.localhost"""
    host, port = _addr(addr)
    # One private loopback (wasi:sockets) shared by every worker process, removed afterwards.
    with commands.private_loopback_dir() as loopback:
        spec = specs.ComponentSpec(
            workload_id="serve",
            name=component.stem,
            wasm_path=component.resolve(),
            grants=_grants(grants, allow_hosts, keyvalue, blobstore),
            config=_pairs(config, "--config"),
            environment=_pairs(env, "--env"),
            allowed_hosts=allow_hosts,
            network=specs.NetworkAccess(loopback_dir=loopback),
            preopens=_preopens(dirs),
            pool_size=pool_size,
            max_invocations=max_invocations,
            request_timeout_s=timeout_s,
            memory_limit_mb=memory_limit_mb,
        )
        engine = specs.EngineSettings.from_environment(os.environ)
        settings = (specs.RuntimeSettings(cache_dir=cache_dir, engine=engine) if cache_dir
                    else specs.RuntimeSettings(engine=engine))
        _show_guest_output()
        try:
            asyncio.run(_serve(spec, host, port, workers, settings))
        except errors.ComponentError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: cannot listen on {addr}: {exc.strerror or exc}", err=True)
            sys.exit(1)


async def _serve(spec: specs.ComponentSpec, host: str, port: int, workers: int,
                 settings: specs.RuntimeSettings) -> None:
    server = WasmServer(host, port, workers=workers, settings=settings)
    # Check the component before starting workers: bad input fails fast with one line.
    await server.prepare(spec)
    await server.start(routes=[(spec.workload_id, ["*"], spec)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        click.echo(f"serving {spec.wasm_path.name} on http://{host}:{server.port}/ ({workers} worker(s))",
                   err=True)
        await stop.wait()
    finally:
        await server.stop(settings.drain_timeout_s)
