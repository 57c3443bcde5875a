"""wasi:logging/logging@0.1.0-draft: a guest's log records, in its workload's log.

Each record becomes one line of the workload's guest log (what `wasmfleet logs` shows), on the
stream "log", as "<level> <context>: <message>" (no context: "<level> <message>"), and one record
of the host's own log, tagged "<workloadId>/<component>". Levels map to the host's: trace and
debug to DEBUG, info to INFO, warn to WARNING, error to ERROR, and critical is logged as error.
"""

from __future__ import annotations

import logging

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import HostPlugin
from wasmfleet.host.plugin_api.interfaces import Interface

log = logging.getLogger("wasmfleet.guest")

STREAM = "log"
"""The guest-log stream of wasi:logging records (stdout and stderr are wasi:cli's)."""

_LEVELS = {
    "trace": ("trace", logging.DEBUG),
    "debug": ("debug", logging.DEBUG),
    "info": ("info", logging.INFO),
    "warn": ("warn", logging.WARNING),
    "error": ("error", logging.ERROR),
    "critical": ("error", logging.ERROR),
}


def _log(level: str, context: str, message: str) -> None:
    name, py_level = _LEVELS.get(level, ("info", logging.INFO))
    text = f"{name} {context}: {message}" if context else f"{name} {message}"
    state = store_state.state()
    log.log(py_level, "%s: %s", state.log_name, text)
    if state.guest_log is not None:
        state.guest_log.write(STREAM, text)


class LoggingPlugin(HostPlugin):
    """wasi:logging/logging; takes no config."""

    name = "wasi-logging"
    version = "0.1.0-draft"

    def interfaces(self) -> tuple[Interface, ...]:
        return (Interface("wasi:logging/logging", {"log": _log}),)
