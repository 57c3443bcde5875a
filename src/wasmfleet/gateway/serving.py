"""The gateway process: proxy + route watcher + EndpointSlice sync, stopped cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from wasmfleet.gateway import endpointslices, proxying, watching
from wasmfleet.gateway.settings import GatewaySettings
from wasmfleet.kube import client
from wasmfleet.observability import metrics_auth

log = logging.getLogger(__name__)


async def run(
    kubeconfig: Path,
    settings: GatewaySettings,
    *,
    endpoint_slices: bool = True,
    on_listening: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives. Raises ValueError for a bad kubeconfig and
    OSError when the port cannot be bound (callers print both as one line)."""
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    guard = metrics_auth.MetricsGuard(kube.post) if settings.metrics_auth else None
    proxy = proxying.Proxy(settings, metrics_guard=guard)
    sinks: list[watching.TableSink] = [proxy.set_table]
    slices = endpointslices.EndpointSliceSync(kube, settings.slice_resync_s) if endpoint_slices else None
    if slices is not None:
        sinks.append(slices.update)
    watcher = watching.RouteWatcher(kube, sinks)
    tasks: list[asyncio.Task[None]] = []
    runner = None
    try:
        runner, port = await proxying.serve(proxy, settings.listen_host, settings.port)
        url = f"http://{settings.listen_host}:{port}"
        log.info("gateway listening on %s", url)
        if on_listening is not None:
            on_listening(url)
        tasks.append(asyncio.create_task(watcher.run()))
        if slices is not None:
            tasks.append(asyncio.create_task(slices.run()))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        waiter.cancel()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runner is not None:
            # Stop accepting, let in-flight requests finish (bounded by aiohttp's shutdown timeout).
            await runner.cleanup()
        await kube.close()
