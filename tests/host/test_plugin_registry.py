"""The plugin registry and the plugin contract, on real entry points of this installation.

Checks: the installed group holds the built-ins (WASI 0.2, wasi:config, wasi:logging,
wasi:keyvalue) at their versions and nothing else is needed to link them; version matching (exact
for pre-releases, same minor for 0.x releases); a plugin that fails to import, or one that provides
an interface another already provides, is left out and the rest still load; entry checks name the
entry, the key and the interface at fault (required key, unknown value, unknown key, unknown
interface, package nobody provides, with and without an entry name).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

from wasmfleet.host.plugin_api.host_plugins import ENTRY_POINT_GROUP, version_accepts
from wasmfleet.host.runtime import plugin_registry
from wasmfleet.host.runtime.specs import Grant


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_the_installed_group_declares_the_built_ins() -> None:
    installed = plugin_registry.installed()
    assert {"wasi", "wasi-config", "wasi-logging", "wasi-keyvalue"} <= {p.name for p in installed.plugins}
    versions = {name: iface.version for name, iface in installed.interfaces.items()}
    assert versions["wasi:io/streams"] == "0.2.12"
    assert versions["wasi:config/store"] == "0.2.0-rc.1"
    assert versions["wasi:logging/logging"] == "0.1.0-draft"
    assert versions["wasi:keyvalue/atomics"] == "0.2.0-draft"


def test_version_rules() -> None:
    assert version_accepts("0.2.12", "0.2.3")
    assert version_accepts("0.2.12", None)
    assert not version_accepts("0.2.12", "0.3.0")
    assert version_accepts("1.4.0", "1.0.2")
    assert not version_accepts("1.4.0", "2.0.0")
    assert version_accepts("0.2.0-rc.1", "0.2.0-rc.1")
    assert not version_accepts("0.2.0-rc.1", "0.2.0-draft")
    assert not version_accepts("0.2.0-draft", "0.2.0")


def test_broken_and_clashing_plugins_are_left_out() -> None:
    installed = plugin_registry.load([
        entry("config", "wasmfleet.host.plugins.wasi_config:ConfigPlugin"),
        entry("config-again", "wasmfleet.host.plugins.wasi_config:ConfigPlugin"),
        entry("missing", "wasmfleet_no_such_module:Plugin"),
        entry("logging", "wasmfleet.host.plugins.wasi_logging:LoggingPlugin"),
    ])
    assert [p.name for p in installed.plugins] == ["wasi-config", "wasi-logging"]
    assert set(installed.interfaces) == {"wasi:config/store", "wasi:logging/logging"}


def test_entry_problems_name_the_entry_and_the_key() -> None:
    installed = plugin_registry.installed()
    problems = installed.entry_problems([
        Grant("wasi", "keyvalue", ("store",), config={"backend": "memcached"}, name="cache"),
        Grant("wasi", "keyvalue", ("watcher",)),
        Grant("wasi", "logging", ("logging",), config={"level": "debug"}),
        Grant("wasi", "config", ("store",), config={"anything": "goes"}),
        Grant("acme", "widgets", ("gadget",)),
        Grant("wasmcloud", "messaging", ("handler",), config={"subscriptions": "a b", "consumer_group": "broadcast"}),
        Grant("wasi", "http", ("incoming-handler",), config={"host": "a.test"}),
    ])
    assert problems == [
        "hostInterfaces entry wasi:keyvalue (name cache): config.backend: unknown value 'memcached' "
        "(expected one of in-memory, nats, redis, filesystem)",
        "hostInterfaces entry wasi:keyvalue: interface watcher is not provided "
        "(wasi-keyvalue provides atomics, batch, store)",
        "hostInterfaces entry wasi:logging: config.level: unknown key (accepted: none)",
        "hostInterfaces entry acme:widgets: no plugin on this host provides acme:widgets",
        "hostInterfaces entry wasmcloud:messaging: config.subscriptions: 'a b' contains whitespace",
    ]
