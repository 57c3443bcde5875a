"""Deny-by-default linking: one linker per component, built from its imports and its grants.

Every import must be an interface an installed plugin provides, at a version it accepts (else
`ComponentError`; see `plugin_registry`). Known interfaces are
linked with the Python implementation when granted, and with stubs that trap ("not granted")
when not, so the component still instantiates and only the forbidden call fails.

Granted without asking (the WASI "core" a component needs to exist at all): wasi:io, wasi:clocks,
wasi:random, wasi:cli, wasi:filesystem (which sees only the spec's preopens, none by default),
wasi:sockets (which reaches only the workload's private loopback unless allowedHosts /
allowedHostLoopbackPorts say more, see `wasi.socket_policy`; upstream manifests grant it no
hostInterfaces entry either) and wasi:http/types. Everything else needs a Grant:
wasi:http/outgoing-handler (then also checked against allowedHosts per request).

Within a workload (`resolve_workload`), an import is satisfied by another component's export when
the interface name and version match exactly; such imports are linked to forwarders (`crossing`)
instead of host implementations. The rules are checked before anything runs: an interface
exported by two components, a cycle, an import nobody provides, a signature that differs between
the two sides, or a resource in a linked interface each fail the start with one line naming the
components and the interface.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables
from wasmfleet.host.plugin_api.host_plugins import version_accepts
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.runtime import crossing, engines, hostfuncs
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import ComponentSpec

ALWAYS_GRANTED = {("wasi", "io"), ("wasi", "clocks"), ("wasi", "random"), ("wasi", "cli"), ("wasi", "filesystem"),
                  ("wasi", "sockets")}
ALWAYS_GRANTED_INTERFACES = {("wasi", "http", "types")}
INCOMING_HANDLER = "wasi:http/incoming-handler"
MESSAGING_HANDLER = "wasmcloud:messaging/handler"
CLI_RUN = "wasi:cli/run"
HOST_FACING_EXPORTS = (INCOMING_HANDLER, MESSAGING_HANDLER, CLI_RUN)
"""Exports the host calls (not other components): several components of a workload may export
them (HTTP goes to the first in manifest order), so they are not subject to the one-exporter rule."""


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
    return spec.grants_interface(name.namespace, name.package, name.interface)


@dataclass
class Plan:
    """What linking a component will do: its instance imports and the incoming-handler export."""

    imports: list[tuple[str, ImportName, bool]]  # (full import name, parsed, granted)
    handler_export: str | None
    linked: list[str] = field(default_factory=list)
    """Imports satisfied by another component of the workload (not by the host)."""
    may_block: bool = False
    """A granted import may wait on something slow (an interface declared `blocking`, such as
    outgoing HTTP, or a function listed in its `blocking_functions`): never run it inline on an
    event loop."""
    suspending: frozenset[str] = frozenset()
    """Imports whose functions are linked to suspend the guest rather than block (planned with
    `suspend`, for interfaces whose `suspends_with` holds): the component is instantiated and
    called through `runtime.suspension`, on an event loop. They do not count in `may_block`."""


def plan(component: cm.Component, spec: ComponentSpec, known: dict[str, Interface],
         linked: Collection[str] = (), suspend: bool = False) -> Plan:
    """Checks a component's imports and exports; raises ComponentError naming the first problem.

    `linked`: import names another component of the workload satisfies (see `resolve_workload`);
    they are not looked up among the host's interfaces. `suspend`: the caller can run the
    component suspended on an event loop; a slow import that can suspend then goes into
    `Plan.suspending` instead of making it `may_block`."""
    eng = engines.engine_of(component)
    ctype = component.type
    imports: list[tuple[str, ImportName, bool]] = []
    linked_names: list[str] = []
    may_block = False
    suspending: set[str] = set()
    for full, ext in ctype.imports(eng).items():
        if full in linked:
            linked_names.append(full)
            continue
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
        granted = is_granted(spec, parsed)
        imports.append((full, parsed, granted))
        if granted and _may_block(provided, spec, parsed, item, eng):
            if suspend and provided.suspends_with is not None and provided.suspends_with(_configs(spec, parsed)):
                suspending.add(full)
            else:
                may_block = True
    handler = next((n for n in ctype.exports(eng) if n.startswith(INCOMING_HANDLER + "@")), None)
    # A component that may block runs on a thread anyway, where its suspending imports block too.
    return Plan(imports, handler, linked_names, may_block, frozenset() if may_block else frozenset(suspending))


def _configs(spec: ComponentSpec, name: ImportName) -> list[Mapping[str, str]]:
    """The config of each of the component's grants that cover the import `name`."""
    return [g.config for g in spec.grants if g.covers(name.namespace, name.package, name.interface)]


def _may_block(provided: Interface, spec: ComponentSpec, name: ImportName, item: cm.ComponentInstanceType,
               eng: wasmtime.Engine) -> bool:
    """Whether a granted import may wait on something slow (`Interface.blocking` and its kin)."""
    if provided.blocking_with is not None:
        return provided.blocking_with(_configs(spec, name))
    if provided.blocking:
        return True
    # The import's own functions are read only when they matter (it costs a walk of its type).
    return bool(provided.blocking_functions) and not provided.blocking_functions.isdisjoint(item.exports(eng))


def _stub(error: type[Exception], message: str) -> Callable[..., Any]:
    def fail(*_: Any) -> Any:
        raise error(message)

    return fail


def build_linker(
    component: cm.Component, spec: ComponentSpec, the_plan: Plan, known: dict[str, Interface],
    fast_host_calls: bool = True, crossings: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[cm.Linker, handle_tables.TypeIds]:
    """`crossings`: for each import linked to another component, function name -> forwarder slot
    (`crossing.new_slot`); every import in `the_plan.linked` must have one."""
    eng = engines.engine_of(component)
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
                                           fast=fast_host_calls, suspending=full in the_plan.suspending)
        for full in the_plan.linked:
            slots = (crossings or {}).get(full)
            if slots is None:
                raise ComponentError(spec.wasm_path, f"imports {full} from another component, but it was not linked")
            with root.add_instance(full) as li:
                for name, slot in slots.items():
                    crossing.add_forwarder(li, name, slot)
    return linker, type_ids


def _is_streams(name: ImportName) -> bool:
    """wasi:io/streams declares no strings, so any string there is a byte list that `byte_lists`
    retyped: its functions move strings as bytes (a no-op for those that were not retyped)."""
    return (name.namespace, name.package, name.interface) == ("wasi", "io", "streams")


def describe_error(exc: wasmtime.WasmtimeError) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


# --- several components in one workload --------------------------------------------------------


@dataclass
class WorkloadLinks:
    """How the components of one workload link to each other (indices in manifest order)."""

    names: list[str]
    order: list[int]
    """Every component, providers before the components importing from them (topological)."""
    providers: list[dict[str, int]]
    """Per component: import name -> index of the component that exports it."""
    exports: list[list[str]]
    """Per component: the interfaces it exports (host-facing ones included)."""
    functions: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    """(consumer, import name) -> the functions of that interface, as the consumer imports them."""

    def closure(self, entry: int) -> list[int]:
        """`entry` and every component it reaches through its imports, providers first."""
        needed = {entry}
        pending = [entry]
        while pending:
            for provider in self.providers[pending.pop()].values():
                if provider not in needed:
                    needed.add(provider)
                    pending.append(provider)
        return [i for i in self.order if i in needed]

    def first_exporting(self, interface: str) -> int | None:
        """The first component in manifest order exporting `interface` (any version)."""
        return next((i for i, names in enumerate(self.exports)
                     if any(n.partition("@")[0] == interface for n in names)), None)

    def imported(self, index: int) -> bool:
        """True when another component imports from component `index` (it is a library)."""
        return any(index in p.values() for p in self.providers)


def _instance_items(ctype: Any, eng: wasmtime.Engine, imports: bool) -> dict[str, cm.ComponentInstanceType]:
    items = ctype.imports(eng) if imports else ctype.exports(eng)
    return {name: ext.ty for name, ext in items.items() if isinstance(ext.ty, cm.ComponentInstanceType)}


def resolve_workload(members: Sequence[tuple[str, cm.Component]], known: Mapping[str, Interface]) -> WorkloadLinks:
    """Links the imports of each (name, component) to the other components' exports.

    Raises ComponentError (naming the components and the interface) for an interface exported by
    two components, an import that neither a component nor the host provides, a linked interface
    whose functions differ between the two sides or that carries resources, and a cycle.
    """
    eng = engines.engine_of(members[0][1]) if members else engines.engine()  # one tier per workload
    names = [name for name, _ in members]
    exported: dict[str, int] = {}
    exports: list[list[str]] = []
    export_types: list[dict[str, cm.ComponentInstanceType]] = []
    for index, (name, component) in enumerate(members):
        own = _instance_items(component.type, eng, imports=False)
        export_types.append(own)
        exports.append(list(own))
        for iface in own:
            if iface.partition("@")[0] in HOST_FACING_EXPORTS:
                continue
            other = exported.setdefault(iface, index)
            if other != index:
                raise ComponentError(
                    f"component {name}",
                    f"exports {iface}, which component {names[other]} also exports "
                    "(an interface may be exported by one component of a workload only)",
                )
    links = WorkloadLinks(names, [], [{} for _ in members], exports)
    for index, (name, component) in enumerate(members):
        for iface, import_type in _instance_items(component.type, eng, imports=True).items():
            provider = exported.get(iface)
            if provider is None:
                if iface.partition("@")[0] not in known:
                    raise ComponentError(f"component {name}", _unsatisfied(iface, names, exports))
                continue  # the host's interface (version checked by `plan`)
            if provider == index:
                raise ComponentError(f"component {name}", f"imports {iface}, which it exports itself")
            links.functions[(index, iface)] = _check_linkable(
                name, import_type, names[provider], export_types[provider][iface], iface, eng
            )
            links.providers[index][iface] = provider
    links.order = _topological(links)
    return links


def _unsatisfied(iface: str, names: list[str], exports: list[list[str]]) -> str:
    base = iface.partition("@")[0]
    near = [f"component {names[i]} exports {e}" for i, found in enumerate(exports) for e in found
            if e.partition("@")[0] == base]
    hint = f" ({'; '.join(near)}: versions must match exactly)" if near else ""
    return (f"imports {iface}, which no component of this workload exports and this host does not "
            f"implement{hint}")


def _check_linkable(consumer: str, wanted: cm.ComponentInstanceType, provider: str,
                    offered: cm.ComponentInstanceType, iface: str, eng: wasmtime.Engine) -> list[str]:
    """The functions `consumer` imports from `provider`'s export `iface`, after checking that each
    exists with the same signature and that no resource crosses (values are copied between the
    two instances by the host; handles of one instance mean nothing in the other)."""
    offered_items = {name: ext.ty for name, ext in offered.exports(eng).items()}
    functions: list[str] = []
    for name, ext in wanted.exports(eng).items():
        item = ext.ty
        if isinstance(item, cm.ResourceType) or (isinstance(item, cm.FuncType) and _has_resource(item)):
            raise ComponentError(
                f"component {consumer}",
                f"imports {iface} from component {provider}, but resources cannot cross components "
                f"({name!r} is or uses a resource); link only functions on plain values",
            )
        if not isinstance(item, cm.FuncType):
            continue  # a named type (record, variant, ...): checked through the functions using it
        theirs = offered_items.get(name)
        if not isinstance(theirs, cm.FuncType):
            raise ComponentError(
                f"component {consumer}",
                f"imports {iface}#{name}, which component {provider} does not export",
            )
        if signature(item) != signature(theirs):
            raise ComponentError(
                f"component {consumer}",
                f"imports {iface}#{name} as {signature(item)}, but component {provider} exports it "
                f"as {signature(theirs)}",
            )
        functions.append(name)
    return functions


def _topological(links: WorkloadLinks) -> list[int]:
    count = len(links.names)
    waiting = {i: set(links.providers[i].values()) for i in range(count)}
    order: list[int] = []
    while len(order) < count:
        ready = [i for i in range(count) if i not in order and not waiting[i]]
        if not ready:
            raise ComponentError("workload", _describe_cycle(links, [i for i in range(count) if i not in order]))
        for i in ready:
            order.append(i)
            for deps in waiting.values():
                deps.discard(i)
    return order


def _describe_cycle(links: WorkloadLinks, stuck: list[int]) -> str:
    # Walk import edges among the stuck components until one repeats: that walk is a cycle.
    path = [stuck[0]]
    while True:
        here = path[-1]
        nxt = next(p for p in links.providers[here].values() if p in stuck)
        if nxt in path:
            cycle = [*path[path.index(nxt):], nxt]
            break
        path.append(nxt)
    steps = []
    for a, b in itertools.pairwise(cycle):
        iface = next(i for i, p in links.providers[a].items() if p == b)
        steps.append(f"{links.names[a]} imports {iface} from {links.names[b]}")
    return "components import each other in a cycle: " + ", ".join(steps)


def _has_resource(fty: cm.FuncType) -> bool:
    types = [t for _, t in fty.params] + ([fty.result] if fty.result is not None else [])
    return any("own<" in signature_of(t) or "borrow<" in signature_of(t) for t in types)


def signature(fty: cm.FuncType) -> str:
    """A function type written out structurally, comparable across components."""
    params = ", ".join(f"{name}: {signature_of(t)}" for name, t in fty.params)
    result = f" -> {signature_of(fty.result)}" if fty.result is not None else ""
    return f"func({params}){result}"


def signature_of(ty: Any) -> str:
    """A value type written out structurally (wasmtime's own equality is per component)."""
    if isinstance(ty, cm.ListType):
        return f"list<{signature_of(ty.element)}>"
    if isinstance(ty, cm.OptionType):
        return f"option<{signature_of(ty.payload)}>"
    if isinstance(ty, cm.ResultType):
        ok = signature_of(ty.ok) if ty.ok is not None else "_"
        err = signature_of(ty.err) if ty.err is not None else "_"
        return f"result<{ok}, {err}>"
    if isinstance(ty, cm.TupleType):
        return f"tuple<{', '.join(signature_of(t) for t in ty.elements)}>"
    if isinstance(ty, cm.RecordType):
        return "record{" + ", ".join(f"{n}: {signature_of(t)}" for n, t in ty.fields) + "}"
    if isinstance(ty, cm.VariantType):
        return "variant{" + ", ".join(n if t is None else f"{n}({signature_of(t)})" for n, t in ty.cases) + "}"
    if isinstance(ty, cm.EnumType):
        return "enum{" + ", ".join(ty.names) + "}"
    if isinstance(ty, cm.FlagsType):
        return "flags{" + ", ".join(ty.names) + "}"
    if isinstance(ty, cm.OwnType):
        return "own<resource>"
    if isinstance(ty, cm.BorrowType):
        return "borrow<resource>"
    return type(ty).__name__.lower()
