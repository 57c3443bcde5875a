"""A thin dict-in/dict-out Kubernetes client on kubernetes_asyncio.

kubernetes_asyncio does the kubeconfig parsing (tokens, client certs, CAs) and owns the aiohttp
session; this module only builds REST paths and maps failures to `errors` at this one boundary.
Everything above speaks plain JSON dicts so custom and built-in kinds are handled alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from wasmfleet.kube import errors, rest_paths

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class KubeClient:
    """CRUD, list and watch for any `rest_paths.Resource`."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api

    @classmethod
    async def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> KubeClient:
        """Build a client from a kubeconfig file; a missing or bad file raises ValueError (one line)."""
        cfg = k8s_client.Configuration()
        try:
            await k8s_config.load_kube_config(
                config_file=str(path), context=context, client_configuration=cfg, persist_config=False
            )
        except Exception as exc:  # YAML, schema, file and credential-plugin errors alike
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(f"cannot load kubeconfig {path}: {detail}") from exc
        # Many controllers share one client: allow enough parallel connections for watches + writes.
        cfg.connection_pool_maxsize = 64
        api = k8s_client.ApiClient(configuration=cfg)
        if not _environment_applies(str(cfg.host)):
            _skip_environment_lookups(api)
        return cls(api)

    @property
    def host(self) -> str:
        """The API server's URL, for messages."""
        return str(self._api.configuration.host)

    async def authorization(self) -> str | None:
        """The Authorization header the kubeconfig's identity sends ("Bearer <token>"), for endpoints that
        accept the same identity (a role's /metrics behind TokenReview); None for certificate identities."""
        settings = await self._api.configuration.auth_settings()
        bearer = settings.get("BearerToken")
        return str(bearer["value"]) if bearer and bearer.get("value") else None

    async def close(self) -> None:
        await self._api.close()

    async def raw(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = 30.0,
    ) -> aiohttp.ClientResponse:
        """One authenticated request with the kubeconfig's credentials; the caller reads and releases it."""
        if body is None or (isinstance(body, dict | list) and "json" in content_type):
            return await self._json_request(method, path, query, body, content_type, accept, timeout)
        try:
            resp: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": accept, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise errors.Unreachable(0, "Unreachable", f"API server unreachable: {detail}") from exc
        return resp

    async def _json_request(
        self, method: str, path: str, query: list[tuple[str, str]] | None, body: object | None,
        content_type: str, accept: str, timeout: aiohttp.ClientTimeout | float | None,
    ) -> aiohttp.ClientResponse:
        """What kubernetes_asyncio's call_api does for a JSON body, on its session and credentials,
        without its generic parameter handling: it walks every body dict (sanitize_for_serialization)
        and serialises with the json module, about a tenth of the operator's CPU at scale."""
        api = self._api
        headers = {**api.default_headers, "Accept": accept, "Content-Type": content_type}
        if api.cookie:
            headers["Cookie"] = api.cookie
        params = list(query or [])
        rest = api.rest_client
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(timeout, aiohttp.ClientTimeout):
            kwargs["timeout"] = timeout
        else:  # as kubernetes_asyncio: a number is the total, none means no limit
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout) if timeout else aiohttp.ClientTimeout()
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
        if rest.proxy:
            kwargs["proxy"] = rest.proxy
        if rest.proxy_headers:
            kwargs["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            kwargs["server_hostname"] = rest.server_hostname
        try:
            await api.update_params_for_auth(headers, params, ["BearerToken"])  # may refresh a token
            url = f"{api.configuration.host}{path}" + ("?" + urlencode(params) if params else "")
            resp: aiohttp.ClientResponse = await rest.pool_manager.request(method, url, **kwargs)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise errors.Unreachable(0, "Unreachable", f"API server unreachable: {detail}") from exc
        return resp

    async def _call(self, method: str, path: str, **kw: Any) -> Obj:
        resp = await self.raw(method, path, **kw)
        try:
            data = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise errors.Unreachable(0, "Unreachable", f"API server connection lost: {exc}") from exc
        finally:
            resp.release()
        if not 200 <= resp.status < 300:
            raise errors.from_status(resp.status, data)
        parsed = _loads(data) if data else {}
        return parsed if isinstance(parsed, dict) else {}

    async def get(self, res: rest_paths.Resource, namespace: str | None, name: str) -> Obj:
        return await self._call("GET", res.path(namespace, name))

    async def list(
        self, res: rest_paths.Resource, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[Obj], str]:
        """All objects (following `continue` pages) and the list's resourceVersion."""
        items: list[Obj] = []
        cont = ""
        while True:
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if cont:
                query.append(("continue", cont))
            page = await self._call("GET", res.path(namespace), query=query)
            kind = res.kind
            for item in page.get("items") or []:
                # List items omit apiVersion/kind; restore them so objects look the same everywhere.
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion", ""))

    async def post(self, path: str, body: Obj) -> Obj:
        """POST to any API path (e.g. a TokenReview, which is created and answered, never stored)."""
        return await self._call("POST", path, body=body)

    async def create(self, res: rest_paths.Resource, namespace: str | None, obj: Obj) -> Obj:
        return await self._call("POST", res.path(namespace), body=obj)

    async def replace(self, res: rest_paths.Resource, obj: Obj, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        return await self._call(
            "PUT", res.path(meta.get("namespace"), meta["name"], subresource), body=obj
        )

    async def patch(
        self, res: rest_paths.Resource, namespace: str | None, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        """A JSON merge patch (RFC 7386): dicts merge, lists and scalars replace, null deletes."""
        return await self._call(
            "PATCH", res.path(namespace, name, subresource), body=patch, content_type=MERGE_PATCH
        )

    async def delete(self, res: rest_paths.Resource, namespace: str | None, name: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await self._call("DELETE", res.path(namespace, name))

    async def watch(
        self, res: rest_paths.Resource, namespace: str | None, resource_version: str, timeout_s: int = 300
    ) -> AsyncIterator[Obj]:
        """Yield watch events ({type, object}) after `resource_version` until the server ends the
        stream. An ERROR event or a 410 raises the mapped error (Gone means: relist)."""
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_s)),
        ]
        # No total timeout: the stream is long-lived; a silent socket is bounded by sock_read.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s + 30)
        resp = await self.raw("GET", res.path(namespace), query=query, timeout=timeout)
        ended = False
        try:
            if not 200 <= resp.status < 300:
                raise errors.from_status(resp.status, await resp.read())
            while True:
                try:
                    line = await resp.content.readline()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise errors.Unreachable(0, "Unreachable", f"watch stream broke: {exc}") from exc
                if not line:
                    ended = True
                    return
                if not line.strip():
                    continue
                event = _loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise errors.from_status(int(status.get("code", 500)), json.dumps(status))
                yield event
        finally:
            # A stream the server ended leaves a reusable connection. One we stop reading (the
            # informer cancelled, an error) is aborted: release() or close() start a TLS goodbye
            # that needs more turns of the loop, and a loop that ends first (a stopping process)
            # leaves the socket to the garbage collector (ResourceWarning). A watch stopped while
            # its request still waits for the response head is closed by aiohttp itself, gracefully:
            # that narrow window can still leave one.
            if ended:
                resp.release()
            else:
                transport = resp.connection.transport if resp.connection is not None else None
                if transport is not None:
                    transport.abort()
                resp.close()


def _loads(data: bytes) -> Any:
    # orjson: several times faster than json on the watch streams and replies, which every object
    # the operator writes comes back through.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise errors.KubeError(0, "BadResponse", f"API server sent invalid JSON: {exc}") from exc


def _environment_applies(host: str) -> bool:
    """Whether a proxy from the environment (HTTPS_PROXY and friends) or a netrc file could apply to
    requests to `host`: the lookups aiohttp makes per request when trusting the environment."""
    if os.environ.get("NETRC") or (Path.home() / ".netrc").exists():
        return True
    parts = urlsplit(host)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _skip_environment_lookups(api: k8s_client.ApiClient) -> None:
    """kubernetes_asyncio opens its aiohttp session with trust_env=True, so every request looks for
    an environment proxy and reads the netrc file, in a thread (a quarter of the operator's CPU at
    scale). When neither exists, the same session without those lookups behaves the same."""
    rest = api.rest_client
    trusting: aiohttp.ClientSession = rest.pool_manager
    connector = trusting.connector
    trusting.detach()  # hand its connector (and the TLS settings in it) to the new session
    rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
