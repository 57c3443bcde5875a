"""/metrics behind a bearer token, checked the Kubernetes way: TokenReview, then SubjectAccessReview.

With `--metrics-auth` the operator, hosts and gateway answer /metrics only to a client whose token the
API server authenticates (authentication.k8s.io/v1 TokenReview) and authorizes for
`get` on the non-resource URL /metrics (authorization.k8s.io/v1 SubjectAccessReview), as
kube-rbac-proxy and controller-runtime's metrics filter do, so Prometheus scrapes with its
ServiceAccount token and an RBAC rule. Answers:

    no or malformed Authorization header, unknown token   401
    token known, not allowed to get /metrics               403
    API server unreachable or answering nonsense           503 (not cached: the next scrape asks again)

Verdicts are cached per token for `ttl_s` (10 s) in a bounded map (oldest dropped first), and
concurrent scrapes with the same token share one review, so a scraper costs the API server at most
two requests per token per TTL. Tokens are kept only as SHA-256 digests.

The API calls go through an injected `post(path, body) -> dict` (the roles pass their kube client's
`post`), so this module needs no client of its own; its failures are mapped to 503 here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Verdict:
    status: int
    """200 allowed, 401 unauthenticated, 403 forbidden, 503 could not decide."""
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if self.status == 401 else {}
        return web.Response(status=self.status, text=self.reason + "\n", headers=headers)


@dataclass
class _Entry:
    verdict: Verdict
    expires: float


@dataclass
class MetricsGuard:
    """Decides whether a request's Authorization header may read /metrics."""

    post: Post
    ttl_s: float = 10.0
    """How long a verdict stands; a revoked token or RBAC rule takes effect within it."""
    max_entries: int = 1024
    """Distinct tokens remembered at once; beyond it the oldest verdict is dropped."""
    clock: Callable[[], float] = time.monotonic
    _cache: OrderedDict[str, _Entry] = field(default_factory=OrderedDict, init=False, repr=False)
    _pending: dict[str, asyncio.Future[Verdict]] = field(default_factory=dict, init=False, repr=False)

    async def verdict(self, authorization: str | None) -> Verdict:
        token = _bearer(authorization)
        if token is None:
            return Verdict(401, "Unauthorized: send Authorization: Bearer <token>")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            return entry.verdict
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await self._review(token)
            if result.status != 503:
                self._remember(key, result)
            future.set_result(result)
            return result
        except BaseException:  # cancelled while asking: the waiters give up too
            future.cancel()
            raise
        finally:
            del self._pending[key]

    def _remember(self, key: str, verdict: Verdict) -> None:
        self._cache[key] = _Entry(verdict, self.clock() + self.ttl_s)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _review(self, token: str) -> Verdict:
        try:
            review = await self.post(TOKEN_REVIEWS, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token},
            })
            status = review.get("status") or {}
            if not status.get("authenticated"):
                return Verdict(401, "Unauthorized: the API server does not know this token")
            user = status.get("user") or {}
            access = await self.post(SUBJECT_ACCESS_REVIEWS, {
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username", ""),
                    "uid": user.get("uid", ""),
                    "groups": list(user.get("groups") or []),
                    "extra": dict(user.get("extra") or {}),
                    "nonResourceAttributes": {"path": METRICS_PATH, "verb": "get"},
                },
            })
        except Exception as exc:  # the injected client's errors, whatever its library: one boundary
            log.warning("cannot check a /metrics token with the API server: %s", exc)
            return Verdict(503, "cannot verify the token now (API server unavailable)")
        decided = access.get("status") or {}
        if decided.get("allowed") is True:
            return Verdict(200)
        name = user.get("username") or "this user"
        return Verdict(403, f"Forbidden: {name} may not get {METRICS_PATH}")


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
