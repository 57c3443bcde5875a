"""Who may look: loopback by default; anywhere else only with a token or behind an auth proxy.

- On a loopback address with neither setting, every request is served (like kubectl proxy).
- `--token T`: a request must carry `Authorization: Bearer T`, or the cookie set by opening any page
  once with `?token=T` (so a browser can follow links; the cookie is HttpOnly and SameSite=Strict).
- `--auth-header NAME`: a request must carry the header NAME (set by the authenticating reverse proxy
  in front, e.g. X-Forwarded-User from oauth2-proxy); its value is shown as the viewer.
- Only GET and HEAD are served: the dashboard is read-only.
- /healthz is open (probes carry no credentials): it says only whether every watch has listed.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE = "wasmfleet-dashboard"
HEALTH_PATH = "/healthz"


class ExposureError(ValueError):
    """A non-loopback address with no way to tell who is asking."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve to anything


def check_exposure(host: str, token: str | None, auth_header: str | None) -> None:
    if not is_loopback(host) and not token and not auth_header:
        raise ExposureError(
            f"--addr {host} is not a loopback address: anyone who can reach it would see the fleet. "
            "Pass --token TOKEN (viewers send it), or --auth-header NAME behind an authenticating proxy")


@dataclass(frozen=True)
class Access:
    token: str | None = None
    auth_header: str | None = None

    def viewer(self, request: web.Request) -> str | None:
        """Who is asking ("" when anyone may), or None when the request may not look."""
        if self.auth_header:
            value = request.headers.get(self.auth_header, "").strip()
            if not value:
                return None
            if not self.token:
                return value
        if self.token:
            given = request.cookies.get(COOKIE, "")
            scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                given = bearer.strip()
            if not (given and hmac.compare_digest(given.encode(), self.token.encode())):
                return None
        return request.headers.get(self.auth_header, "") if self.auth_header else ""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middleware(access: Access) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="the dashboard is read-only\n", headers={"Allow": "GET, HEAD"})
        if request.path == HEALTH_PATH:
            return await handler(request)  # probes carry no credentials; it tells only whether caches are synced
        if access.token and request.query.get("token"):
            if not hmac.compare_digest(request.query["token"].encode(), access.token.encode()):
                return web.Response(status=401, text="wrong token\n")
            # Trade the URL token for a cookie and drop it from the address bar (and from history).
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
            redirect = web.HTTPSeeOther(str(target))
            redirect.set_cookie(COOKIE, access.token, httponly=True, samesite="Strict", path="/")
            return redirect
        viewer = access.viewer(request)
        if viewer is None:
            what = f"the {access.auth_header} header of the auth proxy" if access.auth_header and not access.token \
                else "a token: open the dashboard once with ?token=TOKEN, or send Authorization: Bearer TOKEN"
            return web.Response(status=401, text=f"this dashboard needs {what}\n",
                                headers={"WWW-Authenticate": 'Bearer realm="wasmfleet-dashboard"'})
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        return response

    return guard
