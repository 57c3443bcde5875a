"""The NATS credential and TLS options shared by every command that connects to NATS.

    @click.command("host")
    @click.option(...)
    @nats_connection_options
    def host(..., nats_connection: NatsConnectionOptions) -> None:

The decorator adds --nats-creds, --nats-user, --nats-password, --nats-token, --nats-nkey-seed,
--nats-tls-ca, --nats-tls-cert and --nats-tls-key (settable from the environment by the CLI's rule,
e.g. WASMFLEET_HOST_NATS_PASSWORD), checks them, and hands the command one checked
NatsConnectionOptions in the `nats_connection` argument.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wasmfleet.bus.connection_options import InvalidNatsOptions, NatsConnectionOptions

_FILE = click.Path(dir_okay=False, path_type=Path)

_OPTIONS: list[tuple[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    ("creds", click.option("--nats-creds", type=_FILE, default=None, metavar="FILE",
                           help="NATS .creds file (user JWT and nkey seed).")),
    ("user", click.option("--nats-user", default=None, help="NATS user name (with --nats-password).")),
    ("password", click.option("--nats-password", default=None, help="NATS password.")),
    ("token", click.option("--nats-token", default=None, help="NATS authentication token.")),
    ("nkey_seed", click.option("--nats-nkey-seed", type=_FILE, default=None, metavar="FILE",
                               help="File holding a NATS user nkey seed (SU...).")),
    ("tls_ca", click.option("--nats-tls-ca", type=_FILE, default=None, metavar="FILE",
                            help="PEM CA bundle verifying the NATS server (default: the system CAs).")),
    ("tls_cert", click.option("--nats-tls-cert", type=_FILE, default=None, metavar="FILE",
                              help="PEM client certificate for NATS TLS (with --nats-tls-key).")),
    ("tls_key", click.option("--nats-tls-key", type=_FILE, default=None, metavar="FILE",
                             help="PEM private key of --nats-tls-cert.")),
]


def nats_connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(f"nats_{name}") for name, _ in _OPTIONS}
        options = NatsConnectionOptions(**values)
        try:
            options.check()
        except InvalidNatsOptions as exc:
            raise click.BadParameter(exc.reason, param_hint=f"'{exc.option}'") from None
        return command(*args, nats_connection=options, **kwargs)

    decorated: Callable[..., Any] = wrapper
    for _, option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated
