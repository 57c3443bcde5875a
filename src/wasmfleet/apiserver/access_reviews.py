"""TokenReview and SubjectAccessReview for the identities the embedded API server knows.

    POST /apis/authentication.k8s.io/v1/tokenreviews         {"spec": {"token": ...}}
    POST /apis/authorization.k8s.io/v1/subjectaccessreviews  {"spec": {"user", "groups",
                                                               "resourceAttributes" | "nonResourceAttributes"}}

Both are create-only and answered at once (201 with `status` filled in, nothing stored), as
kube-apiserver does; any other method is 405. They let the operator, hosts and gateway protect
/metrics the same way against the embedded server as against a real cluster (observability.metrics_auth).

The server knows two bearer tokens, each a file of DATA_DIR (0600):

    DATA_DIR/token          user wasmfleet-admin, groups system:masters and system:authenticated:
                            everything (the kubeconfig's user)
    DATA_DIR/metrics-token  user wasmfleet:metrics-reader, group system:authenticated:
                            get the non-resource URL /metrics, nothing else

Only the admin token authenticates ordinary API requests; the metrics token exists for scrapers and is
accepted nowhere but in a TokenReview (so a leaked scraper token reads metrics, not Secrets). A
SubjectAccessReview answers for whatever user and groups it names, with the rules of this table:
`system:masters` may do anything, the metrics reader may get /metrics, anyone else nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from wasmfleet.apiserver import errors

AUTHN_GROUP, AUTHZ_GROUP = "authentication.k8s.io", "authorization.k8s.io"
TOKEN_REVIEWS, SUBJECT_ACCESS_REVIEWS = "tokenreviews", "subjectaccessreviews"
ADMIN_USER = "wasmfleet-admin"
METRICS_READER = "wasmfleet:metrics-reader"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
METRICS_TOKEN_FILE = "metrics-token"


@dataclass(frozen=True)
class Identity:
    username: str
    uid: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class KnownTokens:
    """The bearer tokens this server issues, and who each one is."""

    admin: str
    metrics: str

    def authenticate(self, token: str) -> Identity | None:
        given = token.encode()
        if hmac.compare_digest(given, self.admin.encode()):
            return Identity(ADMIN_USER, ADMIN_USER, (MASTERS, AUTHENTICATED))
        if hmac.compare_digest(given, self.metrics.encode()):
            return Identity(METRICS_READER, METRICS_READER, (AUTHENTICATED,))
        return None


def review_kind(parts: list[str]) -> str | None:
    """"tokenreviews" / "subjectaccessreviews" when the path is one of ours, else None."""
    if len(parts) != 4 or parts[0] != "apis" or parts[2] != "v1":
        return None
    if (parts[1], parts[3]) == (AUTHN_GROUP, TOKEN_REVIEWS):
        return TOKEN_REVIEWS
    if (parts[1], parts[3]) == (AUTHZ_GROUP, SUBJECT_ACCESS_REVIEWS):
        return SUBJECT_ACCESS_REVIEWS
    return None


def answer(kind: str, method: str, body: Any, tokens: KnownTokens) -> dict[str, Any]:
    """The review with its status, for a POST; ApiError (405 / 400) otherwise."""
    if method != "POST":
        raise errors.ApiError(405, f"{kind} can only be created (POST), not {method}")
    if not isinstance(body, dict):
        raise errors.bad_request(f"the request body must be a {_kind_name(kind)} object")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise errors.bad_request(f"{_kind_name(kind)}.spec is required")
    if kind == TOKEN_REVIEWS:
        return _token_review(body, spec, tokens)
    return _subject_access_review(body, spec)


def _kind_name(kind: str) -> str:
    return "TokenReview" if kind == TOKEN_REVIEWS else "SubjectAccessReview"


def _echo(body: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    given = body.get("metadata")
    meta: dict[str, Any] = given if isinstance(given, dict) else {}
    return {"kind": kind, "apiVersion": api_version, "metadata": {**meta, "creationTimestamp": None},
            "spec": body["spec"]}


def _token_review(body: dict[str, Any], spec: dict[str, Any], tokens: KnownTokens) -> dict[str, Any]:
    token = spec.get("token")
    if not isinstance(token, str):
        raise errors.bad_request("TokenReview.spec.token must be a string")
    result = _echo(body, f"{AUTHN_GROUP}/v1", "TokenReview")
    who = tokens.authenticate(token) if token else None
    if who is None:
        result["status"] = {"authenticated": False, "user": {}, "error": "invalid bearer token"}
    else:
        result["status"] = {
            "authenticated": True,
            "user": {"username": who.username, "uid": who.uid, "groups": list(who.groups)},
            "audiences": list(spec.get("audiences") or []),
        }
    return result


def _subject_access_review(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    user = spec.get("user") or ""
    groups = spec.get("groups") or []
    if not isinstance(user, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise errors.bad_request("SubjectAccessReview.spec.user must be a string and spec.groups a list of strings")
    if not user and not groups:
        raise errors.bad_request("SubjectAccessReview.spec needs a user or groups")
    non_resource = spec.get("nonResourceAttributes")
    resource = spec.get("resourceAttributes")
    if (non_resource is None) == (resource is None):
        raise errors.bad_request(
            "SubjectAccessReview.spec needs exactly one of resourceAttributes and nonResourceAttributes")
    allowed, reason = _decide(user, groups, non_resource)
    result = _echo(body, f"{AUTHZ_GROUP}/v1", "SubjectAccessReview")
    result["status"] = {"allowed": allowed, "reason": reason}
    return result


def _decide(user: str, groups: list[str], non_resource: Any) -> tuple[bool, str]:
    if MASTERS in groups:
        return True, f"{MASTERS} may do anything"
    if user == METRICS_READER and isinstance(non_resource, dict) and (
        non_resource.get("path"), non_resource.get("verb")) == ("/metrics", "get"):
        return True, f"{METRICS_READER} may get /metrics"
    return False, f"no rule of the embedded API server allows {user or 'these groups'} this"
