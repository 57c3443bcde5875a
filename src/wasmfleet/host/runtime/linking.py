"""Deny-by-default linking: one linker per component, built from its imports and its grants.

Every import must be an interface an installed plugin provides, at a version it accepts (else
`ComponentError`; see `plugin_registry`). Known interfaces are
linked with the Python implementation when granted, and with stubs that trap ("not granted")
when not, so the component still instantiates and only the forbidden call fails.

Granted without asking (the WASI "core" a component needs to exist at all): wasi:io, wasi:clocks,
wasi:random, wasi:cli, wasi:filesystem (which sees only the spec's preopens, none by default) and
wasi:http/types. Everything else needs a Grant: wasi:http/outgoing-handler (then also checked
against allowedHosts per request). wasi:sockets is never served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables
from wasmfleet.host.plugin_api.host_plugins import version_accepts
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.runtime import engines, hostfuncs
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import ComponentSpec

ALWAYS_GRANTED = {("wasi", "io"), ("wasi", "clocks"), ("wasi", "random"), ("wasi", "cli"), ("wasi", "filesystem")}
ALWAYS_GRANTED_INTERFACES = {("wasi", "http", "types")}
INCOMING_HANDLER = "wasi:http/incoming-handler"


class NotGranted(Exception):
    """A guest called a function of an interface its workload was not granted."""


class NotImplementedByHost(Exception):
    """A guest called a function this host knows by name but does not implement."""


@dataclass(frozen=True)
class ImportName:
    namespace: str
    package: str
    interface: str
    version: str | None

    @property
    def unversioned(self) -> str:
        return f"{self.namespace}:{self.package}/{self.interface}"

    @classmethod
    def parse(cls, name: str) -> ImportName | None:
        base, _, version = name.partition("@")
        ns, sep, rest = base.partition(":")
        pkg, sep2, iface = rest.partition("/")
        if not (sep and sep2 and ns and pkg and iface):
            return None
        return cls(ns, pkg, iface, version or None)


def is_granted(spec: ComponentSpec, name: ImportName) -> bool:
    if (name.namespace, name.package) in ALWAYS_GRANTED:
        return True
    if (name.namespace, name.package, name.interface) in ALWAYS_GRANTED_INTERFACES:
        return True
    if name.namespace == "wasi" and name.package == "sockets":
        return False
    return spec.grants_interface(name.namespace, name.package, name.interface)


@dataclass
class Plan:
    """What linking a component will do: its instance imports and the incoming-handler export."""

    imports: list[tuple[str, ImportName, bool]]  # (full import name, parsed, granted)
    handler_export: str | None


def plan(component: cm.Component, spec: ComponentSpec, known: dict[str, Interface]) -> Plan:
    """Checks a component's imports and exports; raises ComponentError naming the first problem."""
    eng = engines.engine()
    ctype = component.type
    imports: list[tuple[str, ImportName, bool]] = []
    for full, ext in ctype.imports(eng).items():
        item = ext.ty
        parsed = ImportName.parse(full)
        if not isinstance(item, cm.ComponentInstanceType) or parsed is None:
            raise ComponentError(spec.wasm_path, f"imports {full!r}, which is not an interface")
        provided = known.get(parsed.unversioned)
        if provided is None:
            raise ComponentError(
                spec.wasm_path, f"imports {full}, which this host does not implement"
            )
        if not version_accepts(provided.version, parsed.version):
            raise ComponentError(
                spec.wasm_path,
                f"imports {full}, but this host implements {parsed.unversioned}@{provided.version}",
            )
        imports.append((full, parsed, is_granted(spec, parsed)))
    handler = next((n for n in ctype.exports(eng) if n.startswith(INCOMING_HANDLER + "@")), None)
    return Plan(imports, handler)


def _stub(error: type[Exception], message: str) -> Callable[..., Any]:
    def fail(*_: Any) -> Any:
        raise error(message)

    return fail


def build_linker(
    component: cm.Component, spec: ComponentSpec, the_plan: Plan, known: dict[str, Interface],
    fast_host_calls: bool = True,
) -> tuple[cm.Linker, handle_tables.TypeIds]:
    eng = engines.engine()
    linker = cm.Linker(eng)
    type_ids = handle_tables.TypeIds()
    seen: list[tuple[cm.ResourceType, str]] = []
    imports = component.type.imports(eng)
    with linker.root() as root:
        for full, parsed, granted in the_plan.imports:
            impl = known[parsed.unversioned]
            inst_type = imports[full].ty
            assert isinstance(inst_type, cm.ComponentInstanceType)
            with root.add_instance(full) as li:
                for name, ext in inst_type.exports(eng).items():
                    item = ext.ty
                    if isinstance(item, cm.ResourceType):
                        # A resource brought in with `use` is equal to the one defined upstream:
                        # give it the same host type, or instantiation fails with mismatched types.
                        key = next((k for t, k in seen if t == item), f"{parsed.unversioned}#{name}")
                        seen.append((item, key))
                        rid, host_ty = type_ids.host_type(key)
                        type_ids.alias(item, rid)
                        hostfuncs.add_resource(li, name, host_ty)
                    elif isinstance(item, cm.FuncType):
                        if not granted:
                            fn = _stub(NotGranted, f"{full}#{name}: interface not granted to this component")
                        else:
                            fn = impl.functions.get(name) or _stub(
                                NotImplementedByHost, f"{full}#{name}: not implemented by this host"
                            )
                        hostfuncs.add_func(li, name, fn, type_ids, item, latin1=_is_streams(parsed),
                                          fast=fast_host_calls)
    return linker, type_ids


def _is_streams(name: ImportName) -> bool:
    """wasi:io/streams declares no strings, so any string there is a byte list that `byte_lists`
    retyped: its functions move strings as bytes (a no-op for those that were not retyped)."""
    return (name.namespace, name.package, name.interface) == ("wasi", "io", "streams")


def describe_error(exc: wasmtime.WasmtimeError) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
