"""Offline validation of manifests: every error names the file, document, object and field path.

Used by `wasmfleet validate`. Field types and bounds come from the models; the rules that span fields
are the CRDs' CEL rules (`x-kubernetes-validations` of the generated CRDs), evaluated by the same
engine as the API server's (`celrules`), so both report the same field and message for the same
mistake. As kube-apiserver does, the rules are skipped (with a notice) while a blocking schema error
(wrong type, missing field, unsupported value, too long or too many) remains.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wasmfleet.api import celrules, crds, models
from wasmfleet.api.groups import API_VERSION, GROUP

# Core kinds that commonly travel with wasmfleet manifests; only their metadata is checked here.
CORE_KINDS = {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "Service")}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
RULES_NOT_CHECKED = ("some validation rules were not checked because the object was invalid; correct the "
                     "existing errors to complete validation")
# pydantic error types that correspond to kube-apiserver's blocking schema errors (see module docstring).
_BLOCKING = {"missing", "literal_error", "enum", "too_long", "string_too_long"}


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
    errors: list[FieldError] = []
    blocking = False
    try:
        model.model_validate(body)
    except ValidationError as exc:
        errors = [_from_pydantic(err) for err in exc.errors()]
        blocking = any(_is_blocking(str(err["type"])) for err in exc.errors())
    if blocking:
        return [*errors, FieldError("", RULES_NOT_CHECKED)]
    return errors + [FieldError(v.field, v.message) for v in crd_rules(kind).validate(body)]


@functools.cache
def crd_rules(kind: str) -> celrules.CompiledRules:
    """The CEL rules of `kind`'s generated CRD (what deploy/crds holds), compiled once per process."""
    return celrules.compile_schema(crds.openapi_schema(kind))


def _is_blocking(error_type: str) -> bool:
    return error_type in _BLOCKING or error_type.endswith(("_type", "_parsing"))


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
