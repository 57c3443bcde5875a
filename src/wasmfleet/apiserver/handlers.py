"""HTTP request handling: parse, dispatch to the engine, answer JSON (or Table), map errors to Status."""

from __future__ import annotations

import json
import logging
from typing import Any

import yaml
from aiohttp import web

from wasmfleet.apiserver import (
    access_reviews,
    discovery,
    errors,
    kinds,
    openapi,
    patching,
    protobufs,
    routing,
    scaling,
    security,
    tables,
)
from wasmfleet.apiserver.engine import Engine, WriteOptions, WriteResult
from wasmfleet.apiserver.settings import ServerSettings
from wasmfleet.apiserver.store import dumps, intern_keys, loads
from wasmfleet.apiserver.streaming import WatchRequest

log = logging.getLogger(__name__)
JSON = "application/json"
UNAUTHENTICATED = {"/healthz", "/livez", "/readyz"}
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _json_response(body: Any, status: int = 200, warnings: tuple[str, ...] = (), content_type: str = JSON
                   ) -> web.Response:
    text = body if isinstance(body, str) else dumps(body)
    headers = {"Content-Type": content_type}
    resp = web.Response(text=text, status=status, headers=headers)
    for w in warnings:
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


def _table_include(request: web.Request) -> str | None:
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return request.query.get("includeObject", "Metadata")
    return None


def _options(request: web.Request) -> WriteOptions:
    q = request.query
    manager = q.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0] or "unknown"
    validation = q.get("fieldValidation", "Warn")
    if validation not in ("Ignore", "Warn", "Strict"):
        raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn", "Strict", not {validation!r}')
    dry = q.getall("dryRun", [])
    if any(d != "All" for d in dry):
        raise errors.bad_request(f"dryRun must be All, not {dry}")
    force = errors.query_bool(q.get("force"), "force")
    if force and request.headers.get("Content-Type", "").split(";")[0].strip() != patching.APPLY_YAML:
        raise errors.bad_request("force may only be used with server-side apply patches")
    return WriteOptions(manager=manager[:128], dry_run=bool(dry), field_validation=validation, force=force)


class Handlers:
    def __init__(self, engine: Engine, settings: ServerSettings, token: str,
                 known_tokens: access_reviews.KnownTokens | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.token = token
        self.known_tokens = known_tokens or access_reviews.KnownTokens(admin=token, metrics="")
        self.server_address = f"{settings.host}:{settings.port}"

    # --- middleware ----------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if request.path not in UNAUTHENTICATED:
                security.check_bearer(request.headers.get("Authorization"), self.token)
            resp: web.StreamResponse = await handler(request)
            return resp
        except errors.ApiError as exc:
            return _json_response(exc.status(), exc.code)
        except web.HTTPRequestEntityTooLarge:
            err = errors.ApiError(413, f"the request body exceeds the limit of {self.settings.max_body_bytes} bytes")
            return _json_response(err.status(), 413)
        except web.HTTPException as exc:
            err = errors.ApiError(exc.status, exc.reason)
            return _json_response(err.status(), exc.status)
        except (ConnectionResetError, ConnectionError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            err = errors.ApiError(500, "internal error (see the apiserver log)")
            return _json_response(err.status(), 500)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if len(raw) > self.settings.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self.settings.max_body_bytes, actual_size=len(raw))
        ctype = request.headers.get("Content-Type", JSON).split(";")[0].strip().lower()
        if not raw.strip():
            return None
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobufs.decode(raw)
        if ctype in ("application/cbor", patching.APPLY_CBOR):
            raise errors.ApiError(415, f"unsupported media type {ctype!r}: send application/json or YAML")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise errors.bad_request("the request body is not valid UTF-8") from exc
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml", patching.APPLY_YAML):
            try:
                return intern_keys(yaml.load(text, Loader=_YAML_LOADER))
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"the request body is not valid YAML: {str(exc).splitlines()[0]}") from exc
        try:
            return loads(text)
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc

    # --- entry ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.method not in ("GET", "HEAD") and (not parts or parts[0] not in ("api", "apis")):
            raise errors.ApiError(405, f"method {request.method} is not supported on {request.path}")
        if not parts:
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]
            return _json_response({"paths": paths})
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return _json_response(discovery.version())
        if head == "openapi":
            return self._openapi(parts[1:])
        reg = self.engine.registry
        if head == "api":
            if len(parts) == 1:
                return _json_response(discovery.core_versions(self.server_address))
            if len(parts) == 2:
                doc = discovery.resource_list(reg, "", parts[1])
                if doc is None:
                    raise errors.ApiError(404, "the server could not find the requested resource")
                return _json_response(doc)
            return await self._resource(request, routing.resolve(reg, "", parts[1], parts[2:]))
        review = access_reviews.review_kind(parts)
        if review is not None:
            body = await self._body(request) if request.method == "POST" else None
            return _json_response(access_reviews.answer(review, request.method, body, self.known_tokens), 201)
        if head == "apis":
            if len(parts) == 1:
                return _json_response(discovery.group_list(reg))
            if len(parts) == 2:
                group = discovery.group(reg, parts[1])
                if group is None:
                    raise errors.ApiError(404, "the server could not find the requested resource")
                return _json_response(group)
            if len(parts) == 3:
                doc = discovery.resource_list(reg, parts[1], parts[2])
                if doc is None:
                    raise errors.ApiError(404, "the server could not find the requested resource")
                return _json_response(doc)
            return await self._resource(request, routing.resolve(reg, parts[1], parts[2], parts[3:]))
        raise errors.ApiError(404, "the server could not find the requested resource")

    def _openapi(self, rest: list[str]) -> web.Response:
        reg = self.engine.registry
        if rest == ["v3"]:
            return _json_response(openapi.root_doc(reg))
        doc = None
        if len(rest) == 3 and rest[:2] == ["v3", "api"]:
            doc = openapi.group_version_doc(reg, "", rest[2])
        elif len(rest) == 4 and rest[:2] == ["v3", "apis"]:
            doc = openapi.group_version_doc(reg, rest[2], rest[3])
        if doc is None:
            raise errors.ApiError(404, "the server could not find the requested resource")
        return _json_response(doc)

    # --- resources -----------------------------------------------------------------------------
    async def _resource(self, request: web.Request, t: routing.Target) -> web.StreamResponse:
        method = request.method
        if t.name is None:
            if method in ("GET", "HEAD"):
                if errors.query_bool(request.query.get("watch"), "watch"):
                    watch = WatchRequest(self.engine, t.rt, t.namespace, request.query, _table_include(request),
                                         self.settings.bookmark_interval_s)
                    return await watch.serve(request)
                return self._list(request, t)
            if method == "POST":
                if t.rt.namespaced and t.namespace is None:
                    raise errors.ApiError(405, f"create {t.rt.plural} needs a namespace in the path")
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise errors.ApiError(405, f"method {method} is not supported on a collection")
        ns = t.namespace or ""
        if t.subresource == "scale":
            return await self._scale(request, t, ns)
        if method in ("GET", "HEAD"):
            obj = self.engine.get(t.rt, ns, t.name)
            include = _table_include(request)
            if include is not None and not t.subresource:
                return _json_response(tables.table(t.rt, [obj], include, {"resourceVersion": obj["metadata"][
                    "resourceVersion"]}))
            st = self.engine.store.get(t.rt.store_key, ns, t.name)
            return _json_response(st.text if st is not None and st.obj is obj else obj)
        if method == "PUT":
            body = await self._body(request)
            opts = _options(request)
            res, fut = self.engine.update(t.rt, ns, t.name, body, opts, t.subresource)
            return await self._written(res, fut, 200)
        if method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in patching.SUPPORTED and ctype != patching.STRATEGIC:
                raise errors.ApiError(415, f"the body of the request was in an unknown format - accepted media "
                                           f"types include: {', '.join(patching.SUPPORTED)}")
            body = await self._body(request)
            opts = _options(request)
            res, fut = self.engine.patch(t.rt, ns, t.name, ctype, body, opts, t.subresource)
            return await self._written(res, fut, 201 if res.created else 200)
        if method == "DELETE" and not t.subresource:
            body = await self._body(request)
            options = dict(body) if isinstance(body, dict) else {}
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in request.query:
                    options[key] = request.query[key]
            if "orphanDependents" in request.query:
                options["orphanDependents"] = errors.query_bool(request.query["orphanDependents"], "orphanDependents")
            opts = _options(request)
            if options.get("dryRun") == ["All"]:  # DeleteOptions in the body may ask for a dry run too
                opts = WriteOptions(manager=opts.manager, dry_run=True)
            res, fut = self.engine.delete(t.rt, ns, t.name, options, opts)
            if res.deleted and t.rt.builtin and not kinds.is_crd(t.rt):
                # Built-in kinds answer an immediate delete with a success Status, custom resources
                # with the deleted object (as kube-apiserver's registries do).
                if fut is not None:
                    await fut
                meta = res.obj["metadata"]
                return _json_response({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": meta["name"], "group": t.rt.group, "kind": t.rt.plural, "uid": meta["uid"]},
                })
            return await self._written(res, fut, 200 if res.deleted or opts.dry_run else 202)
        raise errors.ApiError(405, f"method {method} is not supported on {request.path}")

    async def _written(self, res: WriteResult, fut: Any, status: int) -> web.Response:
        if fut is not None:
            await fut
        return _json_response(res.text if res.text is not None else res.obj, status, res.warnings)

    async def _create(self, request: web.Request, t: routing.Target) -> web.Response:
        body = await self._body(request)
        if body is None:
            raise errors.bad_request("the request body is empty: send the object to create")
        opts = _options(request)
        res, fut = self.engine.create(t.rt, t.namespace or "", body, opts)
        return await self._written(res, fut, 201)

    def _list(self, request: web.Request, t: routing.Target) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError as exc:
            raise errors.bad_request(f"invalid limit: {q.get('limit')!r}") from exc
        items, meta = self.engine.list(t.rt, t.namespace, q.get("labelSelector"), q.get("fieldSelector"),
                                       max(limit, 0), q.get("continue"))
        include = _table_include(request)
        if include is not None:
            return _json_response(tables.table(t.rt, [o for o, _ in items], include, meta),
                                  content_type="application/json")
        head = dumps({"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version, "metadata": meta})
        text = head[:-1] + ',"items":[' + ",".join(text for _, text in items) + "]}"
        return _json_response(text)

    async def _delete_collection(self, request: web.Request, t: routing.Target) -> web.Response:
        opts = _options(request)
        items, _meta = self.engine.list(t.rt, t.namespace, request.query.get("labelSelector"),
                                       request.query.get("fieldSelector"))
        deleted: list[dict[str, Any]] = []
        futs = []
        for obj, _ in items:
            m = obj["metadata"]
            try:
                res, fut = self.engine.delete(t.rt, m.get("namespace", ""), m["name"], {}, opts)
            except errors.ApiError:
                continue
            deleted.append(res.obj)
            if fut is not None:
                futs.append(fut)
        for fut in futs:
            await fut
        return _json_response({"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version,
                               "metadata": {"resourceVersion": str(self.engine.store.rv)}, "items": deleted})

    async def _scale(self, request: web.Request, t: routing.Target, ns: str) -> web.Response:
        assert t.name is not None
        if request.method == "GET":
            return _json_response(scaling.get_scale(self.engine, t.rt, ns, t.name))
        opts = _options(request)
        if request.method == "PUT":
            scale = await self._body(request)
        elif request.method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            current = scaling.get_scale(self.engine, t.rt, ns, t.name)
            body = await self._body(request)
            if ctype in (patching.MERGE, patching.STRATEGIC):
                scale = patching.merge_patch(current, body)
            elif ctype == patching.JSON_PATCH:
                scale = patching.json_patch(current, body)
            else:
                raise errors.ApiError(415, f"unsupported patch type {ctype!r} for the scale subresource")
        else:
            raise errors.ApiError(405, f"method {request.method} is not supported on scale")
        result, fut = scaling.write_scale(self.engine, t.rt, ns, t.name, scale, opts)
        if fut is not None:
            await fut
        return _json_response(result)
