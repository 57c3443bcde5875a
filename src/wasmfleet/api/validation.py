"""Offline validation of manifests: every error names the file, document, object and field path.

Used by `wasmfleet validate` and by the embedded API server for the rules that span fields (the
CEL rules of the CRDs), so both report the same message for the same mistake.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wasmfleet.api import models, rules
from wasmfleet.api.groups import API_VERSION, GROUP

# Core kinds that commonly travel with wasmfleet manifests; only their metadata is checked here.
CORE_KINDS = {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "Service")}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: Any

    @property
    def label(self) -> str:
        if isinstance(self.body, dict):
            kind = self.body.get("kind", "?")
            meta = self.body.get("metadata")
            name = meta.get("name", "?") if isinstance(meta, dict) else "?"
            return f"{kind}/{name}"
        return "?"


@dataclass(frozen=True)
class Problem:
    source: str
    index: int | None
    label: str
    error: FieldError

    def __str__(self) -> str:
        where = self.source if self.index is None else f"{self.source} [document {self.index}]"
        field = f" {self.error.path}:" if self.error.path else ""
        label = f" {self.label}:" if self.label != "-" else ""
        return f"{where}:{label}{field} {self.error.message}"


class LoadError(Exception):
    """A file that cannot be read or parsed; the message names the file and the position."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


def field_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:
            continue  # a pydantic validator tag such as "function-after[...]", not a field
        else:
            out += f".{part}" if out else str(part)
    return out


def validate_object(body: Any) -> list[FieldError]:
    """Validate one API object; an empty list means valid."""
    if not isinstance(body, dict):
        return [FieldError("", f"expected a mapping (an API object), got {type(body).__name__}")]
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not api_version:
        return [FieldError("apiVersion", "required")]
    if not isinstance(kind, str) or not kind:
        return [FieldError("kind", "required")]
    if (api_version, kind) in CORE_KINDS:
        return _check_meta_only(body)
    if api_version.split("/")[0] == GROUP and api_version != API_VERSION:
        return [FieldError("apiVersion", f"unsupported version {api_version!r}; use {API_VERSION}")]
    model = models.MODELS.get(kind) if api_version == API_VERSION else None
    if model is None:
        return [FieldError("kind", f"unknown kind {kind!r} for apiVersion {api_version!r}")]
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [_from_pydantic(err) for err in exc.errors()]
    return []


def check_rules(body: dict[str, Any]) -> list[FieldError]:
    """Only the rules that span fields (the CRDs' CEL rules), for a body the CRD schema already typed.

    The API server runs this after its own schema check; it reports what `validate_object` would for
    these rules (same paths, same messages) without parsing the whole object into a model.
    """
    kind = body.get("kind")
    if kind == "Host":
        nested = body.get("spec") or {}
        return [] if body.get("hostId") or nested.get("hostId") else [FieldError("", rules.HOST_ID_REQUIRED)]
    spec = body.get("spec") or {}
    if kind == "Workload":
        return _workload_spec_rules(spec, "spec")
    if kind in ("WorkloadReplicaSet", "WorkloadDeployment"):
        return _workload_spec_rules((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    return []


def _workload_spec_rules(spec: dict[str, Any], at: str) -> list[FieldError]:
    errors: list[FieldError] = []
    volumes = spec.get("volumes") or []
    for i, vol in enumerate(volumes):
        problem = rules.volume(vol.get("name", ""), "ephemeral" in vol, "hostPath" in vol)
        if problem:
            errors.append(FieldError(f"{at}.volumes[{i}]", problem))
    entries = spec.get("hostInterfaces") or []
    keys = [(e.get("namespace", ""), e.get("package", ""), e.get("name") or "", e.get("version") or "")
            for e in entries]
    problem = rules.host_interfaces(keys)
    if problem:
        errors.append(FieldError(f"{at}.hostInterfaces", problem))
    if errors:
        return errors  # as with the models: the spec-wide rules run once its parts are valid
    components = spec.get("components") or []
    owners = [(c.get("name", ""), c.get("localResources")) for c in components]
    if spec.get("service") is not None:
        owners.append(("service", spec["service"].get("localResources")))
    mounts = [(owner, m.get("name", "")) for owner, res in owners if res for m in res.get("volumeMounts") or []]
    problem = rules.workload_spec(
        [c.get("name", "") for c in components], spec.get("service") is not None, mounts,
        {v.get("name", "") for v in volumes},
    )
    return [FieldError(at, problem)] if problem else []


def _from_pydantic(err: Any) -> FieldError:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return FieldError(field_path(err["loc"]), msg)


def _check_meta_only(body: dict[str, Any]) -> list[FieldError]:
    try:
        models.ObjectMeta.model_validate(body.get("metadata") or {})
    except ValidationError as exc:
        return [FieldError(".".join(filter(None, ["metadata", field_path(e["loc"])])), _from_pydantic(e).message)
                for e in exc.errors()]
    return []


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
        elif path.exists():
            yield path
        else:
            raise LoadError(str(path), "no such file or directory")


def load_documents(path: Path) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(str(path), f"cannot read: {exc}") from exc
    try:
        if path.suffix == ".json":
            bodies = [json.loads(text)]
        else:
            bodies = [d for d in yaml.safe_load_all(text) if d is not None]
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise LoadError(where, f"invalid YAML: {problem}") from exc
    out: list[Document] = []
    for index, body in enumerate(bodies):
        # A List wrapper (kubectl get -o yaml output) expands into its items.
        if isinstance(body, dict) and body.get("kind") == "List" and isinstance(body.get("items"), list):
            out.extend(Document(str(path), index, item) for item in body["items"])
        else:
            out.append(Document(str(path), index, body))
    return out


def validate_paths(paths: Iterable[str | Path]) -> tuple[int, list[Problem]]:
    """Validate every manifest under `paths`; return (documents checked, problems)."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    count = 0
    for file in iter_files(paths):
        try:
            docs = load_documents(file)
        except LoadError as exc:
            problems.append(Problem(exc.location, None, "-", FieldError("", exc.reason)))
            continue
        for doc in docs:
            count += 1
            problems.extend(Problem(doc.source, doc.index, doc.label, e) for e in validate_object(doc.body))
            key = _identity(doc.body)
            if key is None:
                continue
            where = f"{doc.source} [document {doc.index}]"
            if key in seen:
                problems.append(
                    Problem(doc.source, doc.index, doc.label,
                            FieldError("metadata.name", f"duplicate of {seen[key]}"))
                )
            else:
                seen[key] = where
    return count, problems


def _identity(body: Any) -> tuple[str, str, str, str] | None:
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return None
    meta = body["metadata"]
    if not meta.get("name"):
        return None
    return (str(body.get("apiVersion")), str(body.get("kind")), str(meta.get("namespace") or "default"),
            str(meta["name"]))
