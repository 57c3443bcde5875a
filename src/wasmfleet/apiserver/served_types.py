"""The live table of served resource types; CRDs add and remove entries at runtime."""

from __future__ import annotations

from collections.abc import Iterable

from wasmfleet.apiserver.resource_types import ResourceType, builtin_types


class Registry:
    def __init__(self) -> None:
        self._by_gv: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its types
        for rt in builtin_types():
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._by_gv.setdefault((rt.group, rt.version), {})[rt.plural] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gv.get((group, version), {}).get(plural)

    def group_versions(self) -> list[tuple[str, str]]:
        return sorted(self._by_gv)

    def types_in(self, group: str, version: str) -> list[ResourceType]:
        return list(self._by_gv.get((group, version), {}).values())

    def all_types(self) -> Iterable[ResourceType]:
        for types in self._by_gv.values():
            yield from types.values()

    def storage_type(self, group: str, plural: str) -> ResourceType | None:
        """The type whose version objects of (group, plural) are stored in."""
        candidates = [rt for rt in self.all_types() if rt.group == group and rt.plural == plural]
        for rt in candidates:
            if rt.builtin or rt.version == rt.storage_version:
                return rt
        return candidates[0] if candidates else None

    def install_crd(self, name: str, types: list[ResourceType]) -> None:
        self.remove_crd(name)
        self._crd_types[name] = types
        for rt in types:
            self._add(rt)

    def remove_crd(self, name: str) -> None:
        for rt in self._crd_types.pop(name, []):
            served = self._by_gv.get((rt.group, rt.version), {})
            served.pop(rt.plural, None)
            if not served:
                self._by_gv.pop((rt.group, rt.version), None)
