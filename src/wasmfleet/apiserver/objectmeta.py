"""ObjectMeta rules the server enforces on every kind: names, labels, annotations, system fields."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import time
from typing import Any

Cause = dict[str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Fields only the server writes: client values are replaced (create) or kept from storage (update).
SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "resourceVersion", "selfLink")


_stamp_cache: tuple[int, str] = (0, "")


def now() -> str:
    """RFC 3339 seconds (the API's precision), formatted once per second: this runs on every write."""
    global _stamp_cache
    second = int(time.time())
    if _stamp_cache[0] != second:
        _stamp_cache = (second, dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp_cache[1]


_UID_BATCH = 256
_uid_pool: list[bytes] = []
os.register_at_fork(after_in_child=_uid_pool.clear)  # a forked child must not hand out the parent's UIDs


def new_uid() -> str:
    """A random (version 4) UUID string, without building a uuid.UUID (measurably cheaper per create).

    The randomness is still os.urandom's, read 256 UIDs at a time: one getrandom() call per create cost
    as much as the rest of this function."""
    if not _uid_pool:
        block = os.urandom(16 * _UID_BATCH)
        _uid_pool.extend(block[i:i + 16] for i in range(0, len(block), 16))
    raw = bytearray(_uid_pool.pop())
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_GEN_ALPHABET) for _ in range(5))


def _invalid(field: str, value: Any, why: str) -> Cause:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {value!r}: {why}".replace("'", '"'),
            "field": field}


def check_name(name: str, field: str = "metadata.name") -> list[Cause]:
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [_invalid(field, name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                      "characters, '-' or '.', and must start and end with an alphanumeric "
                                      "character")]
    return []


def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def check_meta(meta: Any) -> list[Cause]:
    if not isinstance(meta, dict):
        return [_invalid("metadata", meta, "must be an object")]
    causes: list[Cause] = []
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            causes.append(_invalid("metadata.labels", labels, "must be a map of strings"))
        else:
            for key, val in labels.items():
                if not _qualified_name_ok(key):
                    causes.append(_invalid("metadata.labels", key, "name part must consist of alphanumeric "
                                                                  "characters, '-', '_' or '.'"))
                if not isinstance(val, str) or len(val) > 63 or not _LABEL_VALUE.match(val):
                    causes.append(_invalid(f"metadata.labels.{key}", val, "a valid label must be an empty "
                                                                          "string or 63 alphanumeric characters"))
    ann = meta.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            causes.append(_invalid("metadata.annotations", "...", "must be a map of strings"))
        elif sum(len(k) + len(v) for k, v in ann.items()) > 256 * 1024:
            causes.append({"reason": "FieldValueTooLong", "message": "Too long: must have at most 262144 bytes",
                           "field": "metadata.annotations"})
    for key in ("finalizers",):
        val = meta.get(key)
        if val is not None and (not isinstance(val, list) or not all(isinstance(v, str) for v in val)):
            causes.append(_invalid(f"metadata.{key}", val, "must be a list of strings"))
    refs = meta.get("ownerReferences")
    if refs is not None:
        if not isinstance(refs, list):
            causes.append(_invalid("metadata.ownerReferences", refs, "must be a list"))
        else:
            for i, ref in enumerate(refs):
                for req in ("apiVersion", "kind", "name", "uid"):
                    if not isinstance(ref, dict) or not ref.get(req):
                        causes.append({"reason": "FieldValueRequired", "message": "Required value",
                                       "field": f"metadata.ownerReferences[{i}].{req}"})
    return causes
