"""NATS with authorization for `wasmfleet up`: one identity per role and per host, fresh every run.

Each `up` run generates a password per identity of `bus.permissions.table` (the operator, the `logs`
CLI, the data plane, and one host user per host ID it starts), writes

    DATA_DIR/nats/nats-server.conf    listen address, JetStream dir, accounts, users, permissions
    DATA_DIR/nats/credentials.json    user name -> password, for the children and `wasmfleet logs`

both 0600 (the server config holds the same passwords), and hands each child its own user and
password through the environment (WASMFLEET_<COMMAND>_NATS_USER / _PASSWORD: never on a command line,
where `ps` shows it to every local user). Nothing is anonymous: a client without a password is
refused by the server.

The config is JSON, which nats-server's configuration syntax accepts as is.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmfleet.bus import permissions

CONFIG_NAME = "nats-server.conf"
CREDENTIALS_NAME = "credentials.json"


@dataclass(frozen=True)
class Login:
    user: str
    password: str

    def env(self, command: str, option: str = "NATS") -> dict[str, str]:
        """The variables `wasmfleet <command>` reads this login from (the CLI's environment rule): its
        --nats-user/--nats-password, or with option="DATA_NATS" the host's --data-nats-* ones."""
        prefix = f"WASMFLEET_{command.upper()}_{option}_"
        return {prefix + "USER": self.user, prefix + "PASSWORD": self.password}


@dataclass(frozen=True)
class FleetAuth:
    """The identities of one `up` run and where they were written."""

    config_path: Path
    credentials_path: Path
    logins: dict[str, Login]

    def login(self, user: str) -> Login:
        return self.logins[user]

    def host(self, host_id: str) -> Login:
        return self.logins[permissions.host_user(host_id)]


def server_config(*, host: str, port: int, store_dir: Path, logins: dict[str, Login],
                  table: dict[str, permissions.Permissions]) -> dict[str, Any]:
    """The nats-server configuration: accounts from the permission table, one user per identity."""
    accounts: dict[str, Any] = {
        # JetStream in CONTROL holds only the artifacts bucket (bus.permissions: CONTROL_JETSTREAM).
        permissions.CONTROL_ACCOUNT: {"jetstream": dict(permissions.CONTROL_JETSTREAM), "users": []},
        permissions.DATA_ACCOUNT: {"jetstream": "enabled", "users": []},
    }
    for user, perms in table.items():
        accounts[perms.account]["users"].append({
            "user": user,
            "password": logins[user].password,
            "permissions": perms.to_server_config(),
        })
    return {
        "listen": f"{host}:{port}",
        "jetstream": {"store_dir": str(store_dir)},
        "accounts": accounts,
    }


def write(nats_dir: Path, *, host: str, port: int, host_ids: list[str]) -> FleetAuth:
    """Generate fresh passwords and write the server config and the credentials file (0600)."""
    nats_dir.mkdir(parents=True, exist_ok=True)
    table = permissions.table(host_ids)
    logins = {user: Login(user, secrets.token_urlsafe(24)) for user in table}
    config = server_config(host=host, port=port, store_dir=nats_dir / "jetstream", logins=logins, table=table)
    config_path = nats_dir / CONFIG_NAME
    credentials_path = nats_dir / CREDENTIALS_NAME
    _write_private(config_path, json.dumps(config, indent=2) + "\n")
    _write_private(credentials_path, json.dumps({u: lg.password for u, lg in logins.items()}, indent=2) + "\n")
    return FleetAuth(config_path, credentials_path, logins)


def read_login(data_dir: Path, user: str) -> Login | None:
    """The login `up` wrote for `user` under DATA_DIR, or None when this fleet has none (an `up` from
    before authorization, or no `up` at all). An unreadable or malformed file raises ValueError naming it."""
    path = data_dir / "nats" / CREDENTIALS_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read the NATS credentials of `wasmfleet up` in {path}: {exc.strerror}") from None
    try:
        passwords = json.loads(text)
        password = passwords.get(user) if isinstance(passwords, dict) else None
    except ValueError:
        password = None
    if not isinstance(password, str) or not password:
        raise ValueError(f"{path} holds no NATS password for {user!r}: rerun `wasmfleet up`")
    return Login(user, password)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # an older tmp file may have had wider bits
    os.replace(tmp, path)
