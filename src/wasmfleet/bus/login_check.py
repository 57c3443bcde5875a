"""One connection attempt at start-up, so a wrong login or TLS setup is one clear line, not a loop.

The operator and the host reconnect to NATS forever (a bus that is down at start is normal), and a
server refusing the password looks to that loop like any other failed attempt: the cause would
scroll by at debug level while the process never becomes ready. So their commands first try once,
without reconnecting, and stop with a line naming the role, the user or file, and the option to fix:

    host 3f2c: NATS at nats://127.0.0.1:4222 refused user 'host-3f2c' (Authorization Violation):
    check --nats-user/--nats-password

A server that cannot be reached is not an error here: the caller's own loop waits for it.
nats-py's exceptions are mapped at this one boundary.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import nats.errors

from wasmfleet.bus import single_attempt
from wasmfleet.bus.connection_options import NatsConnectionOptions

DROPPED = (ConnectionResetError, BrokenPipeError)
"""How a server that closes the connection during the login shows: the reset when we read, the
broken pipe when we write our CONNECT after it closed (about a third of the attempts without a
client certificate against a TLS 1.3 server that requires one, measured here)."""


class LoginRefused(RuntimeError):
    """The NATS server refused this identity or its TLS material: fix the settings, retrying will not help."""


def refusal(exc: BaseException) -> str | None:
    """The server's reason when `exc` says it refused the login, else None."""
    if isinstance(exc, nats.errors.AuthorizationError):
        return "Authorization Violation"
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, nats.errors.Error) and ("authorization" in lowered or "authentication" in lowered):
        return text.removeprefix("nats: ").strip("'\" ")
    return None


def describe_login(options: NatsConnectionOptions) -> tuple[str, str]:
    """(who logged in, which options to check), for the one-line message."""
    if options.creds is not None:
        return f"the credentials in {options.creds}", "--nats-creds"
    if options.nkey_seed is not None:
        return f"the nkey seed in {options.nkey_seed}", "--nats-nkey-seed"
    if options.user is not None:
        return f"user {options.user!r}", "--nats-user/--nats-password"
    if options.token is not None:
        return "the token", "--nats-token"
    return "an anonymous login", "--nats-user/--nats-password (or --nats-creds, --nats-token)"


async def check(url: str, options: NatsConnectionOptions, *, role: str, timeout_s: float = 3.0,
                attempts: int = 3) -> None:
    """Raise LoginRefused when the server at `url` refuses `options`; return otherwise (also when no
    server answers: the caller's reconnect loop handles a bus that is not up yet).

    A server that drops the connection while we log in (with TLS 1.3 a missing client certificate
    often shows as a reset or a broken pipe rather than an alert) is asked again; dropping us every
    time is a refusal."""
    for _ in range(attempts):
        try:
            nc = await _connect_once(url, options, role, timeout_s)
        except DROPPED:
            await asyncio.sleep(0.2)
            continue
        if nc is not None:
            await nc.close()
        return
    hint = " (is a client certificate required? check --nats-tls-cert, --nats-tls-key)" if options.uses_tls else ""
    raise LoginRefused(f"{role}: NATS at {url} closed the connection during login, {attempts} times{hint}")


async def _connect_once(url: str, options: NatsConnectionOptions, role: str, timeout_s: float) -> Any:
    servers = [part.strip() for part in url.split(",") if part.strip()]
    kwargs: dict[str, Any] = options.connect_kwargs()
    try:
        return await asyncio.wait_for(
            single_attempt.connect_once(servers, connect_timeout=timeout_s,
                                        name=f"wasmfleet-{role} login check", error_cb=_quiet, **kwargs),
            timeout_s + 1,
        )
    except ssl.SSLError as exc:
        files = ", ".join(f"{name} {path}" for name, path in (
            ("--nats-tls-ca", options.tls_ca), ("--nats-tls-cert", options.tls_cert),
            ("--nats-tls-key", options.tls_key)) if path is not None) or "the system CAs (--nats-tls-ca)"
        reason = getattr(exc, "reason", None) or str(exc)
        raise LoginRefused(f"{role}: TLS with NATS at {url} failed ({reason}): check {files}") from None
    except DROPPED:
        raise
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        reason = refusal(exc)
        if reason is None:
            return None  # not reachable (yet): not ours to judge
        who, flags = describe_login(options)
        raise LoginRefused(f"{role}: NATS at {url} refused {who} ({reason}): check {flags}") from None


async def _quiet(_exc: Exception) -> None:
    # The failure surfaces as connect()'s exception; nats-py would otherwise also log a traceback.
    return None
