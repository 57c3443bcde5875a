"""The little Kubernetes client behind `wasmfleet apply/get/describe/delete`.

Works against any Kubernetes-compatible API server (the embedded one, or a real cluster): kinds are found
through discovery (/api, /apis), tables come from the server (Accept: as=Table, the same printer columns
kubectl shows), apply is server-side apply. kubernetes_asyncio reads the kubeconfig (token, client cert,
CA); every failure becomes one `ApiError` line naming what went wrong and where.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from wasmfleet.kube import client
from wasmfleet.kube import errors as kerrors

Obj = dict[str, Any]
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
FIELD_MANAGER = "wasmfleet"


class ApiError(Exception):
    """One line for the user; `status` is the HTTP status (0 = not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """kubectl's name for messages: plural.group (or plural for the core group)."""
        return f"{self.singular or self.kind.lower()}.{self.group}" if self.group else (
            self.singular or self.kind.lower()
        )

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base


class Catalog:
    def __init__(self, types: Iterable[ResourceType]) -> None:
        self.types = list(types)

    def resolve(self, name: str) -> ResourceType:
        """Find a type by plural, singular, short name or kind, optionally suffixed with ``.group``."""
        wanted = name.lower()
        for rt in self.types:
            names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names}
            if wanted in names or any(wanted == f"{n}.{rt.group}" for n in names if rt.group):
                return rt
        raise ApiError(f'the server does not have a resource type "{name}"')

    def for_object(self, obj: Obj) -> ResourceType:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        for rt in self.types:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise ApiError(f"the server does not serve kind {kind!r} in {api_version!r}")


class Api:
    def __init__(self, kube: client.KubeClient, where: str) -> None:
        self._kube = kube
        self.where = where
        self._catalog: Catalog | None = None

    @classmethod
    async def connect(cls, kubeconfig: Path) -> Api:
        if not kubeconfig.is_file():
            raise ApiError(f"kubeconfig {kubeconfig} does not exist (is `wasmfleet up` running?)")
        try:
            kube = await client.KubeClient.from_kubeconfig(kubeconfig)
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        return cls(kube, kube.host)

    async def close(self) -> None:
        await self._kube.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, Obj]:
        try:
            resp = await self._kube.raw(method, path, query=query, body=body, content_type=content_type,
                                        accept=accept)
            try:
                data = await resp.read()
            finally:
                resp.release()
        except (kerrors.Unreachable, TimeoutError, aiohttp.ClientError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, kerrors.Unreachable) and exc.__cause__ else exc
            raise ApiError(f"API server {self.where} unreachable: {cause or type(cause).__name__}") from exc
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"message": data.decode(errors="replace")[:300]}
        return resp.status, parsed if isinstance(parsed, dict) else {}

    async def call(self, method: str, path: str, **kw: Any) -> Obj:
        status, body = await self.request(method, path, **kw)
        if not 200 <= status < 300:
            message = body.get("message") or body.get("reason") or f"HTTP {status}"
            raise ApiError(str(message), status)
        return body

    async def catalog(self) -> Catalog:
        if self._catalog is None:
            types: list[ResourceType] = []
            core = await self.call("GET", "/api/v1")
            types += _types("", "v1", core)
            groups = await self.call("GET", "/apis")
            for group in groups.get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("groupVersion")
                if not preferred:
                    continue
                listing = await self.call("GET", f"/apis/{preferred}")
                types += _types(group["name"], preferred.split("/", 1)[1], listing)
            self._catalog = Catalog(types)
        return self._catalog


def _types(group: str, version: str, listing: Obj) -> list[ResourceType]:
    out = []
    for res in listing.get("resources") or []:
        if "/" in res.get("name", ""):
            continue  # subresources such as hosts/status
        out.append(
            ResourceType(
                group=group,
                version=version,
                kind=res.get("kind", ""),
                plural=res["name"],
                singular=res.get("singularName") or res.get("kind", "").lower(),
                short_names=tuple(res.get("shortNames") or ()),
                namespaced=bool(res.get("namespaced")),
            )
        )
    return out


def load_manifests(paths: Iterable[str], stdin_text: str | None = None) -> list[tuple[str, Obj]]:
    """(source, object) for every document in files, folders (*.yaml, *.yml, *.json) or '-' (stdin)."""
    docs: list[tuple[str, Obj]] = []
    for raw in paths:
        if raw == "-":
            sources: list[tuple[str, str]] = [("<stdin>", stdin_text or "")]
        else:
            path = Path(raw)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            elif path.exists():
                files = [path]
            else:
                raise ApiError(f"{raw}: no such file or directory")
            sources = [(str(f), f.read_text()) for f in files]
        for source, text in sources:
            try:
                loaded = [d for d in yaml.safe_load_all(text) if d is not None]
            except yaml.YAMLError as exc:
                raise ApiError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
            for index, doc in enumerate(loaded, 1):
                if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                    raise ApiError(f"{source}: document {index} is not a Kubernetes object (kind/apiVersion)")
                items = doc.get("items") if doc["kind"].endswith("List") else None
                base = Path(source).resolve().parent if source != "<stdin>" else Path.cwd()
                for item in items if isinstance(items, list) else [doc]:
                    resolve_local_images(item, base)
                    docs.append((source, item))
    return docs


def _resolve(image: object, base: Path) -> object:
    if isinstance(image, str) and image.startswith("file:") and not image.startswith("file:/"):
        return f"file://{(base / image.removeprefix('file:')).resolve()}"
    return image


def resolve_local_images(obj: Obj, base: Path) -> None:
    """Turn ``image: file:relative.wasm`` into an absolute file:// URL, relative to the manifest's folder.

    A wasmfleet convenience so examples run from any checkout; absolute file:///, OCI and http(s)
    references are left alone, and kubectl users simply write absolute paths."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj.get("kind") == "Artifact":
        spec["image"] = _resolve(spec.get("image"), base)
        return
    template = spec.get("template")
    workload_spec = template.get("spec") if isinstance(template, dict) else spec
    if not isinstance(workload_spec, dict):
        return
    for component in workload_spec.get("components") or []:
        if isinstance(component, dict):
            component["image"] = _resolve(component.get("image"), base)
    service = workload_spec.get("service")
    if isinstance(service, dict):
        service["image"] = _resolve(service.get("image"), base)
