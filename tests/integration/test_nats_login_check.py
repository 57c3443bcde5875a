"""bus.login_check: a refused login or TLS setup is one line at start, naming the role and what to fix.

Against real nats-servers (TLS with client certificates, users and passwords; the PKI comes from the
deploy tests' fixtures, made with openssl):
- a server certificate the given CA does not vouch for: "TLS ... failed (CERTIFICATE_VERIFY_FAILED)"
  naming --nats-tls-ca and its file;
- no client certificate where the server requires one: refused, naming the TLS options (an alert or,
  as TLS 1.3 often shows it, a connection reset at every attempt);
- a wrong password: refused naming the user and --nats-user/--nats-password; no login at all where
  one is required: "an anonymous login";
- a server that is not there: no error (the caller's reconnect loop waits for it);
- a good login: no error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wasmfleet.bus import login_check
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.testing.nats import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.deploy.test_nats_connection_options import configured_server, pki, tls_block  # noqa: F401 - pki fixture


async def test_tls_problems_are_one_line(pki: Path, tmp_path: Path) -> None:  # noqa: F811
    with configured_server(tmp_path, tls_block(pki)) as addr:
        url = f"nats://{addr}"
        good = NatsConnectionOptions(tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem", tls_key=pki / "client-key.pem")
        await login_check.check(url, good, role="operator")
        other_ca = NatsConnectionOptions(tls_ca=pki / "other-ca.pem", tls_cert=pki / "client.pem",
                                         tls_key=pki / "client-key.pem")
        with pytest.raises(login_check.LoginRefused) as wrong_ca:
            await login_check.check(url, other_ca, role="operator")
        text = str(wrong_ca.value)
        assert text.startswith(f"operator: TLS with NATS at {url} failed (") and "\n" not in text
        assert "certificate_verify_failed" in text.lower() and f"--nats-tls-ca {pki / 'other-ca.pem'}" in text
        with pytest.raises(login_check.LoginRefused) as no_client_cert:
            await login_check.check(url, NatsConnectionOptions(tls_ca=pki / "ca.pem"), role="host h1")
        assert str(no_client_cert.value).startswith("host h1: ")
        assert "--nats-tls" in str(no_client_cert.value), no_client_cert.value


async def test_password_problems_are_one_line(tmp_path: Path) -> None:
    with configured_server(tmp_path, 'authorization { user: "wf", password: "s3cret" }') as addr:
        url = f"nats://{addr}"
        await login_check.check(url, NatsConnectionOptions(user="wf", password="s3cret"), role="operator")
        with pytest.raises(login_check.LoginRefused) as wrong:
            await login_check.check(url, NatsConnectionOptions(user="wf", password="nope"), role="operator")
        assert str(wrong.value) == (f"operator: NATS at {url} refused user 'wf' (Authorization Violation): "
                                    "check --nats-user/--nats-password")
        with pytest.raises(login_check.LoginRefused, match="refused an anonymous login"):
            await login_check.check(url, NatsConnectionOptions(), role="operator")


async def test_an_absent_server_is_left_to_the_reconnect_loop() -> None:
    await login_check.check(f"nats://127.0.0.1:{free_port()}", NatsConnectionOptions(user="u", password="p"),
                            role="operator", timeout_s=1)
