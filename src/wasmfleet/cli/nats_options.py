"""The NATS credential and TLS options shared by every command that connects to NATS.

    @click.command("host")
    @click.option(...)
    @nats_connection_options
    def host(..., nats_connection: NatsConnectionOptions) -> None:

The decorator adds --nats-creds, --nats-user, --nats-password, --nats-token, --nats-nkey-seed,
--nats-tls-ca, --nats-tls-cert and --nats-tls-key (settable from the environment by the CLI's rule,
e.g. WASMFLEET_HOST_NATS_PASSWORD), checks them, and hands the command one checked
NatsConnectionOptions in the `nats_connection` argument. `data_nats_connection_options` adds the same
eight options prefixed --data-nats- (the data plane's identity of `wasmfleet host`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wasmfleet.bus.connection_options import InvalidNatsOptions, NatsConnectionOptions

_FILE = click.Path(dir_okay=False, path_type=Path)


def _options(prefix: str, role: str) -> list[tuple[str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """The eight options named --<prefix>-creds ... --<prefix>-tls-key, for the connection of `role`
    ("this component", "the data plane")."""
    p = f"--{prefix}-"
    return [
        ("creds", click.option(p + "creds", type=_FILE, default=None, metavar="FILE",
                               help=f"NATS .creds file (user JWT and nkey seed) of {role}.")),
        ("user", click.option(p + "user", default=None, help=f"NATS user name of {role} (with {p}password).")),
        ("password", click.option(p + "password", default=None, help=f"NATS password of {role}.")),
        ("token", click.option(p + "token", default=None, help=f"NATS authentication token of {role}.")),
        ("nkey_seed", click.option(p + "nkey-seed", type=_FILE, default=None, metavar="FILE",
                                   help=f"File holding a NATS user nkey seed (SU...) of {role}.")),
        ("tls_ca", click.option(p + "tls-ca", type=_FILE, default=None, metavar="FILE",
                                help=f"PEM CA bundle verifying {role}'s NATS server (default: the system CAs).")),
        ("tls_cert", click.option(p + "tls-cert", type=_FILE, default=None, metavar="FILE",
                                  help=f"PEM client certificate for {role}'s NATS TLS (with {p}tls-key).")),
        ("tls_key", click.option(p + "tls-key", type=_FILE, default=None, metavar="FILE",
                                 help=f"PEM private key of {p}tls-cert.")),
    ]


def _decorator(prefix: str, role: str, argument: str, *, none_when_unset: bool
               ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    options = _options(prefix, role)
    keyword = prefix.replace("-", "_")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(f"{keyword}_{name}") for name, _ in options}
            if none_when_unset and all(v is None for v in values.values()):
                return command(*args, **{argument: None}, **kwargs)
            checked = NatsConnectionOptions(**values)
            try:
                checked.check()
            except InvalidNatsOptions as exc:
                # The options' names are the --nats-* ones: say which set they belong to.
                option = exc.option.replace("--nats-", f"--{prefix}-", 1)
                raise click.BadParameter(exc.reason.replace("--nats-", f"--{prefix}-"),
                                         param_hint=f"'{option}'") from None
            return command(*args, **{argument: checked}, **kwargs)

        decorated: Callable[..., Any] = wrapper
        for _, option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


nats_connection_options = _decorator("nats", "this component", "nats_connection", none_when_unset=False)
"""--nats-creds ... --nats-tls-key, handed to the command as `nats_connection`."""

data_nats_connection_options = _decorator("data-nats", "the data plane", "data_nats_connection", none_when_unset=True)
"""--data-nats-creds ... --data-nats-tls-key (`wasmfleet host`: the login plugins use for workloads'
data), handed to the command as `data_nats_connection`, None when none is given."""
