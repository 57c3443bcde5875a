"""The API semantics, independent of HTTP: create/get/list/update/patch/delete and subresources.

Every write runs synchronously up to `store.stage` (no await between reading the current object and
staging the new one, so concurrent writers are serialized and optimistic concurrency is exact), then
awaits the commit before the caller answers.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from wasmfleet.apiserver import (
    endpointslice_checks,
    errors,
    eventforms,
    kinds,
    managedfields,
    objectmeta,
    patching,
    selectors,
)
from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.schemas import SchemaChecker
from wasmfleet.apiserver.served_types import Registry
from wasmfleet.apiserver.store import Store, dumps
from wasmfleet.apiserver.watching import WatchHub

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True)
class WriteOptions:
    manager: str = "unknown"
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    force: bool = False


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    warnings: tuple[str, ...] = ()
    deleted: bool = False
    text: str | None = None  # the stored JSON of `obj` when it is exactly what was stored


class Engine:
    def __init__(self, registry: Registry, store: Store, hub: WatchHub) -> None:
        self.registry = registry
        self.store = store
        self.hub = hub
        self._checkers: dict[tuple[str, str, str], SchemaChecker] = {}

    # --- helpers -----------------------------------------------------------------------------
    def checker(self, rt: ResourceType) -> SchemaChecker | None:
        if rt.schema is None:
            return None
        key = (rt.group, rt.version, rt.plural)
        got = self._checkers.get(key)
        if got is None or got.schema is not rt.schema:
            got = self._checkers[key] = SchemaChecker(rt.schema)
        return got

    def serve_crd(self, name: str, crd: dict[str, Any]) -> None:
        """Serve a stored CRD's versions, their schema checks and CEL rules compiled now, not on the first
        write of an object."""
        types = kinds.crd_types(crd)
        self.registry.install_crd(name, types)
        for rt in types:
            self.checker(rt)

    def present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as `rt`'s version shows it (same-storage versions differ only in apiVersion,
        except the two shapes of Event)."""
        if obj.get("apiVersion") != rt.api_version:
            converted = eventforms.convert(obj, rt.api_version)
            obj = converted if converted is not None else dict(obj, apiVersion=rt.api_version)
        return obj

    def _to_storage(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A written object in the shape it is stored in: events.k8s.io Events in the core shape, custom
        resources under the CRD's storage version (so every stored object has one apiVersion)."""
        if rt.shared_storage is not None:
            converted = eventforms.convert(obj, "v1")
            if converted is not None:
                return converted
        if not rt.builtin and rt.storage_version and rt.version != rt.storage_version:
            obj["apiVersion"] = f"{rt.group}/{rt.storage_version}"
        return obj

    def current(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        st = self.store.get(rt.store_key, ns, name)
        if st is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return st.obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        nso = self.store.get(("", "namespaces"), "", ns)
        if nso is None:
            raise errors.ApiError(404, f'namespaces "{ns}" not found',
                                  details={"name": ns, "kind": "namespaces"})
        if nso.obj["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, f"unable to create new content in namespace {ns} because it is being "
                                       "terminated", reason="Forbidden")

    def _check_type(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON or YAML object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if kind is not None and kind != rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if api_version is not None and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})")
        body["apiVersion"] = rt.api_version
        body["kind"] = rt.kind
        meta = body.get("metadata")
        if meta is None:
            body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.invalid(rt.kind, rt.group, "", [{"reason": "FieldValueInvalid", "field": "metadata",
                                                           "message": "Invalid value: must be an object"}])
        return body

    def _normalize(self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions,
                   previous: dict[str, Any] | None = None, name_causes: list[dict[str, str]] | None = None
                   ) -> list[str]:
        """Meta checks, pruning, defaulting and validation; returns warnings. Raises 400/422.

        One 422 lists every error, in kube-apiserver's order: metadata, schema, then the CRD's CEL rules
        (`previous`, the stored object on update, is their `oldSelf`). As in kube-apiserver, a blocking
        schema error (wrong type, missing required field, unsupported value, too long/many) skips the
        rules and adds a notice that they were not checked."""
        name = obj["metadata"].get("name", "")
        causes = list(name_causes or ())
        causes.extend(objectmeta.check_meta(obj["metadata"]))
        warnings: list[str] = []
        checker = self.checker(rt)
        if checker is not None:
            pruned = checker.normalize(obj)
            if pruned and opts.field_validation == "Strict":
                raise errors.bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in pruned))
            if pruned and opts.field_validation == "Warn":
                warnings.extend(f'unknown field "{p}"' for p in pruned)
            schema_causes = checker.validate(obj)
            causes.extend(schema_causes)
            causes.extend(checker.check_rules(obj, previous, schema_causes))
        if kinds.is_crd(rt):
            causes.extend(kinds.check_crd(obj))
        if rt.store_key == endpointslice_checks.STORE_KEY:
            causes.extend(endpointslice_checks.check(obj))
        if causes:
            raise errors.invalid(rt.kind, rt.group, name, causes)
        return warnings

    def _stage(self, rt: ResourceType, obj: dict[str, Any] | None, ns: str, name: str, opts: WriteOptions) -> Any:
        if opts.dry_run:
            return None
        return self.store.stage(rt.store_key, (ns, name), obj)

    def _stored_text(self, rt: ResourceType, ns: str, name: str, obj: dict[str, Any]) -> str | None:
        """The JSON already serialized for storage, reused for the response (saves a second dumps)."""
        st = self.store.get(rt.store_key, ns if rt.namespaced else "", name)
        if st is not None and st.obj is obj and obj.get("apiVersion") == rt.api_version:
            return st.text
        return None

    # --- reads ---------------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        return self.present(rt, self.current(rt, ns, name))

    def list(self, rt: ResourceType, ns: str | None, label_selector: str | None, field_selector: str | None,
             limit: int = 0, cont: str | None = None) -> tuple[list[tuple[dict[str, Any], str]], dict[str, Any]]:
        """Matching (object, json text) pairs sorted by namespace/name, and the list metadata."""
        match = selectors.matcher(label_selector, field_selector)
        rv = self.store.rv
        start: tuple[str, str] | None = None
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start = (token["ns"], token["name"])
                rv = int(token["rv"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request(f"continue key is not valid: {exc}") from exc
        items = sorted(self.store.items(rt.store_key, ns), key=lambda kv: kv[0])
        out: list[tuple[dict[str, Any], str]] = []
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        for okey, st in items:
            if start is not None and okey <= start:
                continue
            obj = st.obj
            text = st.text
            if obj.get("apiVersion") != rt.api_version:
                obj = self.present(rt, obj)
                text = dumps(obj)
            if match is not None and not match(obj):
                continue
            if limit and len(out) >= limit:
                last = out[-1][0]["metadata"]
                token = {"rv": rv, "ns": last.get("namespace", ""), "name": last["name"]}
                meta["continue"] = base64.urlsafe_b64encode(dumps(token).encode()).decode()
                break
            out.append((obj, text))
        return out, meta

    # --- create --------------------------------------------------------------------------------
    def create(self, rt: ResourceType, ns: str, body: Any, opts: WriteOptions, *, applied: bool = False
               ) -> tuple[WriteResult, Any]:
        obj = self._to_storage(rt, self._check_type(rt, body))
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = ""
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(rt.kind, rt.group, "", [{"reason": "FieldValueRequired", "message":
                                     "name or generateName is required", "field": "metadata.name"}])
            for _ in range(8):
                meta["name"] = objectmeta.generate_name(prefix)
                if self.store.get(rt.store_key, ns, meta["name"]) is None:
                    break
        name = meta["name"]
        causes = objectmeta.check_name(name) if isinstance(name, str) else [
            {"reason": "FieldValueInvalid", "field": "metadata.name", "message": "Invalid value: must be a string"}]
        if not causes and kinds.is_namespace(rt) and (len(name) > 63 or "." in name):
            causes = [{"reason": "FieldValueInvalid", "field": "metadata.name", "message": f'Invalid value: "{name}": '
                       "a lowercase RFC 1123 label must be at most 63 characters, without dots"}]
        if not isinstance(name, str):
            raise errors.invalid(rt.kind, rt.group, str(name), causes)
        # An invalid name is reported with every other field error (kube validates it with the object).
        self._check_namespace(rt, ns)
        if self.store.get(rt.store_key, ns, name) is not None:
            raise errors.already_exists(rt.group, rt.plural, name)
        for field in objectmeta.SYSTEM_FIELDS:
            meta.pop(field, None)
        meta.pop("deletionGracePeriodSeconds", None)
        if rt.status_subresource and not kinds.is_crd(rt):
            obj.pop("status", None)
        when = objectmeta.now()
        meta["uid"] = objectmeta.new_uid()
        meta["creationTimestamp"] = when
        meta["generation"] = 1
        kinds.on_create(rt, obj)
        warnings = self._normalize(rt, obj, opts, name_causes=causes)
        if kinds.is_crd(rt):
            obj["status"] = kinds.crd_status(obj, when)
        if not applied:  # server-side apply has already recorded its Apply entry
            meta.pop("managedFields", None)
            managedfields.record_update(None, obj, opts.manager, rt.api_version, when)
        if kinds.is_crd(rt) and not opts.dry_run:
            self.serve_crd(name, obj)
        fut = self._stage(rt, obj, ns, name, opts)
        return WriteResult(self.present(rt, obj), created=True, warnings=tuple(warnings),
                           text=self._stored_text(rt, ns, name, obj)), fut

    # --- update --------------------------------------------------------------------------------
    def update(self, rt: ResourceType, ns: str, name: str, body: Any, opts: WriteOptions,
               subresource: str = "") -> tuple[WriteResult, Any]:
        obj = self._to_storage(rt, self._check_type(rt, body))
        current = self.current(rt, ns, name)
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise errors.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the '
                                     f"URL ({name})")
        if rt.namespaced and meta.get("namespace") not in (None, "", ns):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        rv = meta.get("resourceVersion")
        if rv in (None, ""):
            if not rt.builtin:
                raise errors.invalid(rt.kind, rt.group, name, [{
                    "reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                    "message": "Invalid value: 0: must be specified for an update"}])
        elif str(rv) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name, "the object has been modified; please apply your "
                                                             "changes to the latest version and try again")
        return self.write_update(rt, ns, name, current, obj, opts, subresource)

    def write_update(self, rt: ResourceType, ns: str, name: str, current: dict[str, Any], obj: dict[str, Any],
                      opts: WriteOptions, subresource: str) -> tuple[WriteResult, Any]:
        cmeta = current["metadata"]
        if subresource == "status":
            new = copy.deepcopy(current)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            new["metadata"]["namespace"] = cmeta.get("namespace")
            if not rt.namespaced:
                new["metadata"].pop("namespace", None)
            if rt.status_subresource:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            kinds.on_write(rt, new)
        nmeta = new["metadata"]
        nmeta["name"] = name
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if field in cmeta:
                nmeta[field] = cmeta[field]
            else:
                nmeta.pop(field, None)
        if cmeta.get("deletionTimestamp"):
            added = set(nmeta.get("finalizers") or []) - set(cmeta.get("finalizers") or [])
            if added:
                raise errors.invalid(rt.kind, rt.group, name, [{
                    "reason": "FieldValueForbidden", "field": "metadata.finalizers",
                    "message": "Forbidden: no new finalizers can be added if the object is being deleted"}])
        warnings = self._normalize(rt, new, opts, current)
        if _spec_changed(current, new, rt):
            nmeta["generation"] = int(cmeta.get("generation", 1)) + 1
        when = objectmeta.now()
        managedfields.record_update(current, new, opts.manager, rt.api_version, when, subresource)
        if _same(current, new):
            return WriteResult(self.present(rt, current), warnings=tuple(warnings)), None
        nmeta["resourceVersion"] = cmeta["resourceVersion"]
        if kinds.is_crd(rt):
            new["status"] = kinds.crd_status(new, cmeta["creationTimestamp"])
            if not opts.dry_run:
                self.serve_crd(name, new)
        if nmeta.get("deletionTimestamp") and not nmeta.get("finalizers") and not _ns_finalizers(rt, new):
            fut = self._remove(rt, ns, name, opts)
            return WriteResult(self.present(rt, new), warnings=tuple(warnings), deleted=True), fut
        fut = self._stage(rt, new, ns, name, opts)
        return WriteResult(self.present(rt, new), warnings=tuple(warnings),
                           text=self._stored_text(rt, ns, name, new)), fut

    # --- patch ---------------------------------------------------------------------------------
    def patch(self, rt: ResourceType, ns: str, name: str, content_type: str, patch: Any, opts: WriteOptions,
              subresource: str = "") -> tuple[WriteResult, Any]:
        if content_type == patching.APPLY_YAML:
            return self._apply(rt, ns, name, patch, opts, subresource)
        current = self.current(rt, ns, name)
        base = copy.deepcopy(self.present(rt, current))
        if content_type == patching.MERGE:
            result = patching.merge_patch(base, patch)
        elif content_type == patching.JSON_PATCH:
            result = patching.json_patch(base, patch)
        elif content_type == patching.STRATEGIC:
            if not rt.builtin:
                accepted = ", ".join(m for m in patching.SUPPORTED if m != patching.STRATEGIC)
                raise errors.ApiError(415, "the body of the request was in an unknown format - accepted media "
                                           f"types include: {accepted}")
            result = patching.strategic_merge(base, patch)
        else:
            raise errors.ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                       f"include: {', '.join(patching.SUPPORTED)}")
        if not isinstance(result, dict):
            raise errors.bad_request("the patch did not produce an object")
        result = self._to_storage(rt, self._check_type(rt, result))
        rv = result["metadata"].get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name, "the object has been modified; please apply your "
                                                             "changes to the latest version and try again")
        if result["metadata"].get("name", name) != name:
            raise errors.bad_request("metadata.name cannot be changed by a patch")
        return self.write_update(rt, ns, name, current, result, opts, subresource)

    def _apply(self, rt: ResourceType, ns: str, name: str, applied: Any, opts: WriteOptions,
               subresource: str) -> tuple[WriteResult, Any]:
        applied = self._to_storage(rt, self._check_type(rt, applied))
        meta = applied["metadata"]
        if meta.get("name", name) != name:
            raise errors.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the '
                                     f"URL ({name})")
        meta["name"] = name
        checker = self.checker(rt)
        if checker is not None:
            # Compare and own the configuration as it will be stored (defaults filled in), as SSA does.
            pruned = checker.normalize(applied)
            if pruned and opts.field_validation == "Strict":
                raise errors.bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in pruned))
        st = self.store.get(rt.store_key, ns if rt.namespaced else "", name)
        when = objectmeta.now()
        include_status = subresource == "status" or not rt.status_subresource
        if st is None:
            if subresource:
                raise errors.not_found(rt.group, rt.plural, name)
            obj = managedfields.apply(None, applied, opts.manager, rt.api_version, when, force=opts.force,
                                      include_status=include_status)
            return self.create(rt, ns, obj, opts, applied=True)
        current = st.obj
        new = managedfields.apply(current, applied, opts.manager, rt.api_version, when, force=opts.force,
                                  include_status=include_status)
        return self.write_update(rt, ns, name, current, new, opts, subresource)

    # --- delete --------------------------------------------------------------------------------
    def delete(self, rt: ResourceType, ns: str, name: str, options: dict[str, Any], opts: WriteOptions
               ) -> tuple[WriteResult, Any]:
        current = self.current(rt, ns, name)
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise errors.bad_request("DeleteOptions.preconditions must be an object")
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(rt.group, rt.plural, name, f"Precondition failed: UID in precondition: "
                                                             f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(rt.group, rt.plural, name, "Precondition failed: resourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, resourceVersion in object meta: "
                                  f"{meta['resourceVersion']}")
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "", "", [{"reason": "FieldValueNotSupported",
                                 "field": "propagationPolicy", "message": f"Unsupported value: {policy!r}"}])
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Orphan": ORPHAN, "Foreground": FOREGROUND}.get(policy or "")
        if extra and extra not in finalizers and self.store.dependents(meta["uid"]):
            finalizers.append(extra)
        if finalizers or _ns_finalizers(rt, current):
            new = copy.deepcopy(current)
            nmeta = new["metadata"]
            changed = False
            if not nmeta.get("deletionTimestamp"):
                nmeta["deletionTimestamp"] = objectmeta.now()
                nmeta["deletionGracePeriodSeconds"] = 0
                changed = True
            if finalizers != list(nmeta.get("finalizers") or []):
                nmeta["finalizers"] = finalizers
                changed = True
            if kinds.is_namespace(rt):
                new.setdefault("status", {})["phase"] = "Terminating"
            if not changed:
                return WriteResult(self.present(rt, current)), None
            fut = self._stage(rt, new, ns, name, opts)
            return WriteResult(self.present(rt, new)), fut
        fut = self._remove(rt, ns, name, opts)
        return WriteResult(self.present(rt, current), deleted=True), fut

    def _remove(self, rt: ResourceType, ns: str, name: str, opts: WriteOptions) -> Any:
        if opts.dry_run:
            return None
        futs = []
        if kinds.is_crd(rt):
            crd = self.store.get(rt.store_key, "", name)
            spec = crd.obj.get("spec", {}) if crd else {}
            key = (spec.get("group", ""), spec.get("names", {}).get("plural", ""))
            for okey, _ in list(self.store.items(key)):
                futs.append(self.store.stage(key, okey, None))
            self.registry.remove_crd(name)
        futs.append(self.store.stage(rt.store_key, (ns, name), None))
        return futs[-1]


def _ns_finalizers(rt: ResourceType, obj: dict[str, Any]) -> bool:
    """Namespaces wait for their content to be removed (spec.finalizers) before they go."""
    return kinds.is_namespace(rt) and bool(obj.get("spec", {}).get("finalizers"))


def _spec_changed(old: dict[str, Any], new: dict[str, Any], rt: ResourceType) -> bool:
    skip = {"metadata", "apiVersion", "kind"}
    if rt.status_subresource:
        skip.add("status")
    keys = (set(old) | set(new)) - skip
    return any(old.get(k) != new.get(k) for k in keys)


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A no-op write (only managedFields timestamps differ) must not bump resourceVersion."""
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
        mf = [{k: v for k, v in e.items() if k != "time"} for e in obj["metadata"].get("managedFields") or []]
        return dict(obj, metadata=meta, _mf=mf)
    return strip(old) == strip(new)
