"""example:greeting/greeter@0.1.0, a third-party wasmfleet host plugin written for the tests.

greet(name) answers "<salutation>, <name>!" from the workload's hostInterfaces config
(`salutation` required, `style` plain or shout); events() lists what the lifecycle hooks saw in
this host process, so a test can observe them through a guest.
"""

from __future__ import annotations

import threading

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import ConfigKey, HostContext, HostPlugin, WorkloadContext
from wasmfleet.host.plugin_api.interfaces import Interface

_events: list[str] = []
_lock = threading.Lock()


def _event(text: str) -> None:
    with _lock:
        _events.append(text)


def _greet(name: str) -> str:
    config: dict[str, str] = {}
    for grant in store_state.state().grants:
        if (grant.namespace, grant.package) == ("example", "greeting"):
            config.update(grant.config)
    text = f"{config.get('salutation', 'Hello')}, {name}!"
    return text.upper() if config.get("style") == "shout" else text


def _events_now() -> list[str]:
    with _lock:
        return list(_events)


class GreeterPlugin(HostPlugin):
    name = "greeter"
    version = "0.1.0"
    config_keys = (
        ConfigKey("salutation", required=True, doc="the word to greet with"),
        ConfigKey("style", choices=("plain", "shout")),
    )

    def interfaces(self) -> tuple[Interface, ...]:
        return (Interface("example:greeting/greeter", {"greet": _greet, "events": _events_now}),)

    def start_host(self, host: HostContext) -> None:
        _event(f"start-host {host.host_id or '-'}")

    def stop_host(self) -> None:
        _event("stop-host")

    def start_workload(self, workload: WorkloadContext) -> None:
        _event(f"start-workload {workload.workload_id} {workload.component} "
               f"salutation={workload.entries[0].get('salutation', '-') if workload.entries else '-'}")

    def stop_workload(self, workload_id: str) -> None:
        _event(f"stop-workload {workload_id}")
