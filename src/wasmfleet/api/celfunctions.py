"""Kubernetes' own CEL functions that CRD rules may call, beyond CEL's standard library.

kube-apiserver 1.28 gives rules its list library (`isSorted`, `sum`, `min`, `max`, `indexOf`,
`lastIndexOf`) and its regex library (`find`, `findAll`); this module declares them for Google's CEL,
except the list `indexOf`/`lastIndexOf`: CEL here declares those names once, for strings (the strings
extension), and a second declaration is refused.
Differences kept small and stated: list functions are declared over `list(dyn)`, so `sum`/`min`/`max`
return `dyn` (kube: the element type) and mixing element types is caught at run time, not compile
time; regular expressions are Python's `re` (kube: RE2; the common syntax is the same). Other libraries
(URLs, authz, quantity) are not declared: a rule that calls them fails to compile and the CRD is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]

_T = cel.Type


def _is_sorted(items: Sequence[Any]) -> bool:
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _sum(items: Sequence[Any]) -> Any:
    return sum(items[1:], items[0]) if items else 0


def _least(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("min called on empty list")
    return min(items)


def _most(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("max called on empty list")
    return max(items)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _find(text: str, pattern: str) -> str:
    found = _regex(pattern).search(text)
    return found.group(0) if found else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    matches = [m.group(0) for m in _regex(pattern).finditer(text)]
    return matches if limit < 0 else matches[:limit]


def _member(name: str, impl: Any, returns: Any, *params: Any) -> Any:
    return cel.Overload(name, return_type=returns, parameters=list(params), is_member=True, impl=impl)


def declarations() -> list[Any]:
    """Fresh declarations for one CEL environment."""
    any_list = _T.List(_T.DYN)
    return [
        cel.FunctionDecl("isSorted", [_member("list_is_sorted", _is_sorted, _T.BOOL, any_list)]),
        cel.FunctionDecl("sum", [_member("list_sum", _sum, _T.DYN, any_list)]),
        cel.FunctionDecl("min", [_member("list_min", _least, _T.DYN, any_list)]),
        cel.FunctionDecl("max", [_member("list_max", _most, _T.DYN, any_list)]),
        cel.FunctionDecl("find", [_member("string_find", _find, _T.STRING, _T.STRING, _T.STRING)]),
        cel.FunctionDecl("findAll", [
            _member("string_find_all", _find_all, _T.List(_T.STRING), _T.STRING, _T.STRING),
            _member("string_find_all_n", _find_all, _T.List(_T.STRING), _T.STRING, _T.STRING, _T.INT),
        ]),
    ]
