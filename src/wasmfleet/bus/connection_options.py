"""How a wasmfleet component authenticates to NATS and secures the link.

One set of settings shared by every command that connects (operator, host), named after their
command-line options (--nats-creds, --nats-user, --nats-password, --nats-token, --nats-nkey-seed,
--nats-tls-ca, --nats-tls-cert, --nats-tls-key), turned here into nats-py `connect()` keyword
arguments. Files are read when the arguments are built, so `check()` at startup turns a missing or
unreadable file into an error naming the option instead of a retry loop that never succeeds.

TLS follows the server: nats-py upgrades the link when the server's INFO says tls_required (every
nats-server with a `tls` block does). The CA verifies the server; a client certificate and key
authenticate this component when the server sets `verify: true`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class InvalidNatsOptions(ValueError):
    """A NATS connection setting is unusable; `option` names it as on the command line."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


@dataclass(frozen=True)
class NatsConnectionOptions:
    """Credentials and TLS material; every field is optional and at most one way to log in is used."""

    creds: Path | None = None
    """A .creds file (user JWT and nkey seed), for servers in operator/JWT mode."""
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed: Path | None = None
    """A file holding a user nkey seed (SU...)."""
    tls_ca: Path | None = None
    """PEM bundle of the CA(s) that signed the server's certificate (default: the system's)."""
    tls_cert: Path | None = None
    """PEM client certificate; needs tls_key (unless the key is in the same file)."""
    tls_key: Path | None = None

    @staticmethod
    def option_name(field_name: str) -> str:
        return "--nats-" + field_name.replace("_", "-")

    def check(self) -> None:
        """Raise InvalidNatsOptions for an inconsistent set or a file that cannot be used."""
        self.connect_kwargs()

    @property
    def uses_tls(self) -> bool:
        return any(value is not None for value in (self.tls_ca, self.tls_cert, self.tls_key))

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect()`; empty when nothing is set (anonymous, TLS only if the
        server asks for it, verified against the system CAs)."""
        self._check_combination()
        kwargs: dict[str, Any] = {}
        if self.creds is not None:
            kwargs["user_credentials"] = str(_readable(self.creds, "creds"))
        if self.nkey_seed is not None:
            kwargs["nkeys_seed_str"] = _nkey_seed(_readable(self.nkey_seed, "nkey_seed"))
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password
        if self.token is not None:
            kwargs["token"] = self.token
        if self.uses_tls:
            kwargs["tls"] = self._ssl_context()
        return kwargs

    def _check_combination(self) -> None:
        logins = [f.name for f in fields(self) if f.name in ("creds", "user", "token", "nkey_seed")
                  and getattr(self, f.name) is not None]
        if len(logins) > 1:
            names = ", ".join(self.option_name(name) for name in logins)
            raise InvalidNatsOptions(self.option_name(logins[1]), f"use one way to log in, not several ({names})")
        if self.password is not None and self.user is None:
            raise InvalidNatsOptions("--nats-password", "needs --nats-user")
        if self.user is not None and not self.password:
            raise InvalidNatsOptions("--nats-user", "needs --nats-password")
        if self.tls_key is not None and self.tls_cert is None:
            raise InvalidNatsOptions("--nats-tls-key", "needs --nats-tls-cert")

    def _ssl_context(self) -> ssl.SSLContext:
        ca = _readable(self.tls_ca, "tls_ca") if self.tls_ca is not None else None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
        except ssl.SSLError as exc:
            raise InvalidNatsOptions("--nats-tls-ca", f"{ca} is not a PEM CA bundle ({exc.reason})") from None
        if self.tls_cert is not None:
            cert = _readable(self.tls_cert, "tls_cert")
            key = _readable(self.tls_key, "tls_key") if self.tls_key is not None else None
            try:
                context.load_cert_chain(str(cert), str(key) if key else None)
            except ssl.SSLError as exc:
                option = "--nats-tls-key" if key is not None and "KEY" in str(exc.reason).upper() else "--nats-tls-cert"
                raise InvalidNatsOptions(
                    option, f"cannot use certificate {cert} with key {key or cert} ({exc.reason})") from None
        return context


def _readable(path: Path, field_name: str) -> Path:
    option = NatsConnectionOptions.option_name(field_name)
    if not path.is_file():
        raise InvalidNatsOptions(option, f"{path} is not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InvalidNatsOptions(option, f"cannot read {path} ({exc.strerror})") from None
    return path


def _nkey_seed(path: Path) -> str:
    seed = path.read_text().strip()
    if not seed.startswith("SU"):
        raise InvalidNatsOptions("--nats-nkey-seed", f"{path} does not hold a user nkey seed (SU...)")
    return seed
