"""Running a command component: instantiate it and call its wasi:cli/run export once.

    command = Command(spec, settings)          # compile (cached), check imports, link: once
    outcome = command.run(["prog", "arg"], CommandStdio.of_process(), cancel)
    command.close()

or `run_command(spec, settings, args, stdio, cancel) -> exit code` for a single run.

A command uses the same engine, component cache, deny-by-default linking (grants) and WASI
implementation as components serving HTTP; what differs is the export it calls, its arguments and
its stdio (`CommandStdio`: stream factories, so a caller may connect the process's descriptors,
a log, or pipes). Each run gets a fresh store with the spec's memory limit and no CPU deadline.

Exit codes follow `wasmtime run`: run returning ok is 0 and err is 1; wasi:cli/exit(code) is
that code; a trap is 134 (128 + SIGABRT, what wasmtime's CLI exits with) with the reason in
`Outcome.trap`. `Cancel.cancel()` (any thread) stops a run within one epoch check (about 10 ticks)
or, when the guest waits in a host call, within a second: then the outcome is `cancelled`.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as cm

from wasmfleet.host.plugin_api import guestlogs, handle_tables, store_state
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.runtime import cpu_quota, engines, hostfuncs, linking, plugin_registry
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings
from wasmfleet.host.wasi import filesystem, io, private_loopback, wasi_table

RUN_EXPORT = "wasi:cli/run"
TRAP_EXIT_CODE = 134
CANCEL_CHECK_TICKS = 10
"""Epoch ticks between two cancellation checks while the guest computes (10 ms ticks: 100 ms)."""


class FdOutput(io.OutputStream):
    """Writes straight to a file descriptor (unbuffered, like wasmtime's stdout): output order
    between stdout and stderr is the guest's. A closed reader (EPIPE) closes the stream."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except (BrokenPipeError, OSError):
            self.closed = True


class FdReader:
    """Reads a file descriptor on a daemon thread into a channel, from the first read on (a
    command that never reads stdin leaves it alone). Blocking reads wait on the channel, so a
    cancelled run is not stuck in read(2)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.channel = io.Channel()
        self._started = False
        self._lock = threading.Lock()
        self._resume = threading.Event()
        self.channel.on_drain = self._resume.set

    def stream(self) -> io.InputStream:
        return _LazyChannelInput(self)

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._pump, name=f"stdin-fd{self.fd}", daemon=True).start()

    def _pump(self) -> None:
        try:
            while True:
                data = os.read(self.fd, 1 << 16)
                if not data:
                    break
                if not self.channel.feed(data):
                    self._resume.wait()
                    self._resume.clear()
            self.channel.close()
        except OSError as exc:
            self.channel.close(f"stdin: {exc.strerror}")


class _LazyChannelInput(io.ChannelInput):
    def __init__(self, reader: FdReader) -> None:
        super().__init__(reader.channel)
        self.reader = reader

    def read(self, n: int) -> bytes | None:
        self.reader.start()
        return super().read(n)

    def ready(self) -> bool:
        self.reader.start()
        return super().ready()

    def blocking_read(self, n: int) -> bytes | None:
        self.reader.start()
        return super().blocking_read(n)


@dataclass(frozen=True)
class CommandStdio:
    """Where a command's stdin, stdout and stderr go: a factory per stream (wasi:cli hands out a
    new stream resource on each get-stdout call)."""

    stdin: Callable[[], io.InputStream]
    stdout: Callable[[], io.OutputStream]
    stderr: Callable[[], io.OutputStream]

    @classmethod
    def of_fds(cls, stdin: int | None, stdout: int, stderr: int) -> CommandStdio:
        """Connects file descriptors (stdin None: empty)."""
        reader = FdReader(stdin) if stdin is not None else None
        return cls(
            stdin=reader.stream if reader is not None else io.InputStream,
            stdout=lambda: FdOutput(stdout),
            stderr=lambda: FdOutput(stderr),
        )

    @classmethod
    def of_process(cls) -> CommandStdio:
        return cls.of_fds(0, 1, 2)


class Cancel:
    """Asks a running command to stop (from any thread)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._states: list[store_state.WasiContext] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            states = list(self._states)
        for state in states:
            # Host calls that wait (stdin, poll) give up when the deadline has passed.
            state.deadline = 0.0
            state.notify()

    def _watch(self, state: store_state.WasiContext) -> None:
        with self._lock:
            self._states.append(state)
        if self.cancelled:
            state.deadline = 0.0

    def _unwatch(self, state: store_state.WasiContext) -> None:
        with self._lock:
            self._states.remove(state)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    trap: str | None = None
    """Why the guest trapped (None when it returned or called exit)."""
    cancelled: bool = False


class _Cancelled(Exception):
    """The run was cancelled (Cancel.cancel); `_ended` reports it as such."""


def _epoch_callback(cancel: Cancel | None, quota: cpu_quota.Quota | None) -> Any:
    """Called by wasmtime when the store's epoch deadline passes: trap if cancelled, throttle to
    the CPU quota, else extend (checks every tick under a quota, every CANCEL_CHECK_TICKS without)."""

    def stop() -> BaseException | None:
        return _Cancelled("cancelled") if cancel is not None and cancel.cancelled else None

    ticks = cpu_quota.CHECK_TICKS if quota is not None else CANCEL_CHECK_TICKS
    return cpu_quota.callback(stop, quota, ticks=ticks)


class Command:
    """A command component compiled, checked and linked once; each `run` is a fresh instance."""

    def __init__(self, spec: ComponentSpec, settings: RuntimeSettings, plugin_hooks: bool = True) -> None:
        """Raises ComponentError (naming the file) when it is not a runnable command."""
        self.spec = spec
        engines.configure(settings.engine)
        # Retyped like HTTP components (reads only), so the conformance suite's C programs, which
        # write from odd addresses, check that the rewrite leaves writes alone.
        artefact = engines.compile_to_cache(spec.wasm_path, settings.cache_dir)
        self.component = engines.load(artefact)
        known = _interfaces(self.component, spec)
        self.plan = linking.plan(self.component, spec, known)
        eng = engines.engine_of(self.component)
        export = next((n for n in self.component.type.exports(eng) if n.split("@")[0] == RUN_EXPORT), None)
        if export is None:
            raise ComponentError(spec.wasm_path, "does not export wasi:cli/run, so it is not a command component")
        iface = self.component.get_export_index(export)
        run_idx = self.component.get_export_index("run", iface) if iface is not None else None
        if run_idx is None:
            raise ComponentError(spec.wasm_path, f"exports {export} without `run`")
        self.run_idx = run_idx
        self.linker, _ = linking.build_linker(self.component, spec, self.plan, known, settings.engine.fast_host_calls)
        self.memory_bytes = (spec.memory_limit_mb or settings.memory_limit_mb) << 20
        self.quota = cpu_quota.Quota(spec.cpu_limit_millicores) if spec.cpu_limit_millicores > 0 else None
        self.preopens = [(filesystem.preopen(p.host_path, p.read_only), p.guest_path) for p in spec.preopens]
        self._lifecycle: plugin_registry.Lifecycle | None = None
        if plugin_hooks and spec.grants:  # plugins' workload hooks concern granted packages only
            self._lifecycle = plugin_registry.process_lifecycle(settings.plugin_host)
            self._lifecycle.component_loaded(spec)

    def run(self, args: Sequence[str], stdio: CommandStdio, cancel: Cancel | None = None,
            guest_log: guestlogs.GuestLog | None = None) -> Outcome:
        """Runs wasi:cli/run once on this thread (blocking) and says how it ended. `guest_log`: where
        wasi:logging records go besides the process log (a host's service: its workload's log)."""
        spec = self.spec
        state = store_state.WasiContext(
            workload_id=spec.workload_id, component=spec.name,
            environment=list(spec.environment.items()), arguments=list(args), preopens=self.preopens,
            allowed_hosts=spec.allowed_hosts, network=spec.network, config=spec.config, grants=spec.grants,
            log_name=f"{spec.workload_id}/{spec.name}", stdio=stdio, guest_log=guest_log,
        )
        table = handle_tables.ResourceTable(state)
        store = wasmtime.Store(engines.engine_of(self.component))
        store.set_limits(memory_size=self.memory_bytes)
        callback = _epoch_callback(cancel, self.quota)  # referenced until the store is gone
        cpu_quota.install(ctypes.cast(store.ptr(), ctypes.c_void_p).value or 0, callback)
        store.set_epoch_deadline(cpu_quota.CHECK_TICKS if self.quota is not None else CANCEL_CHECK_TICKS)
        if cancel is not None:
            cancel._watch(state)
        previous = handle_tables.swap(table)
        try:
            return self._call(store, cancel)
        finally:
            handle_tables.swap(previous)
            if cancel is not None:
                cancel._unwatch(state)
            table.clear()
            store.close()
            del callback

    def _call(self, store: wasmtime.Store, cancel: Cancel | None) -> Outcome:
        hostfuncs.last_exception()  # forget a cause left by an earlier call on this thread
        try:
            instance = self.linker.instantiate(store, self.component)
            func = instance.get_func(store, self.run_idx)
            if func is None:
                raise ComponentError(self.spec.wasm_path, "its wasi:cli/run `run` is not a function")
            result = func(store)
            func.post_return(store)
        except wasmtime.WasmtimeError as exc:
            return self._ended(exc, cancel)
        return Outcome(1 if _is_err(result) else 0)

    def _ended(self, exc: wasmtime.WasmtimeError, cancel: Cancel | None) -> Outcome:
        cause = hostfuncs.last_exception()
        if isinstance(cause, store_state.GuestExit):
            return Outcome(cause.code)
        if cancel is not None and cancel.cancelled:
            return Outcome(TRAP_EXIT_CODE, "cancelled", cancelled=True)
        if cause is not None:
            return Outcome(TRAP_EXIT_CODE, f"{type(cause).__name__}: {cause}")
        text = " ".join(str(exc).split())
        return Outcome(TRAP_EXIT_CODE, text.rsplit("Caused by:", 1)[-1].strip()[:300])

    def close(self) -> None:
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is not None:
            lifecycle.component_closed(self.spec)


private_loopback_dir = private_loopback.temporary
"""`with private_loopback_dir() as path:` a fresh private loopback directory for one command run
(`wasmfleet run`: its wasi:sockets ports), removed afterwards."""


def _interfaces(component: cm.Component, spec: ComponentSpec) -> dict[str, Interface]:
    """What the linker may use: only the built-in WASI plugin when it covers every import and
    nothing is granted beyond it (loading every installed plugin, with their clients, is most of
    a short command's start-up), else every installed plugin, as for hosts."""
    if not spec.grants:
        wasi = plugin_registry.Installed()
        wasi.add(wasi_table.WasiPlugin())
        imports = component.type.imports(engines.engine_of(component))
        names = [linking.ImportName.parse(full) for full in imports]
        if all(n is not None and n.unversioned in wasi.interfaces for n in names):
            return wasi.interfaces
    return plugin_registry.installed().interfaces


def _is_err(result: Any) -> bool:
    """wasmtime-py lifts `result` (no payloads) as Variant("ok") or Variant("err")."""
    return getattr(result, "tag", None) == "err"


def run_command(
    spec: ComponentSpec, settings: RuntimeSettings, args: Sequence[str], stdio: CommandStdio,
    cancel: Cancel | None = None,
) -> int:
    """Loads, runs once and closes a command component; returns its exit code (see module doc)."""
    command = Command(spec, settings)
    try:
        return command.run(args, stdio, cancel).exit_code
    finally:
        command.close()
