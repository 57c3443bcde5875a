"""wasi:config/store@0.2.0-rc.1: a component's configuration values, read-only.

One map per component, later sources winning (as upstream merges them): the config of the
workload's wasi:config hostInterfaces entries (in order), then the component's
localResources.config, then its localResources.environment. `get` of an absent key is Ok(none);
nothing here can fail, so the error cases (upstream, io) are never returned.
"""

from __future__ import annotations

from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import HostPlugin
from wasmfleet.host.plugin_api.interfaces import Interface, ok

PACKAGE = ("wasi", "config")


def merged_config(state: store_state.WasiContext) -> dict[str, str]:
    """The component's config map (see the module docstring for the order)."""
    values: dict[str, str] = {}
    for grant in state.grants:
        if (grant.namespace, grant.package) == PACKAGE:
            values.update(grant.config)
    values.update(state.config)
    values.update(state.environment)
    return values


def _get(key: str) -> tuple[str, Any]:
    return ok(merged_config(store_state.state()).get(key))


def _get_all() -> tuple[str, Any]:
    return ok(sorted(merged_config(store_state.state()).items()))


class ConfigPlugin(HostPlugin):
    """wasi:config/store; an entry's config holds values for the guest (any key)."""

    name = "wasi-config"
    version = "0.2.0-rc.1"
    open_config = True

    def interfaces(self) -> tuple[Interface, ...]:
        return (Interface("wasi:config/store", {"get": _get, "get-all": _get_all}),)
