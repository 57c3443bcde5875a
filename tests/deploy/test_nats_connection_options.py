"""NATS credentials and TLS (wasmfleet.bus.connection_options, the --nats-* options) against a real
nats-server started with a config file; certificates are made with openssl (wasmfleet.testing.pki):

- TLS with a client certificate (verify on): the options connect and a request is answered; without
  the client certificate, or without our CA, the connection is refused;
- user/password, token and nkey-seed logins work with the right secret and are refused with a wrong one;
- a .creds file is passed to nats-py as user_credentials;
- bad settings name the option: missing file, key without certificate, a file that is not a CA
  bundle, a certificate with the wrong key, two logins at once, a seed that is not a user seed;
- `wasmfleet operator` and `wasmfleet host`, configured through WASMFLEET_*_NATS_* variables, join a
  TLS + password NATS: the host's Host object becomes Ready in the embedded API server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import pytest

from wasmfleet.bus import single_attempt
from wasmfleet.bus.connection_options import InvalidNatsOptions, NatsConnectionOptions
from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port, nats_server_binary
from wasmfleet.testing.pki import make_pki, nats_tls_block

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem/-key.pem (127.0.0.1, localhost), client.pem/-key.pem, other-ca.pem."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def configured_server(tmp_path: Path, config: str, jetstream: bool = False) -> Iterator[str]:
    """nats-server -c CONFIG on a free loopback port; yields host:port."""
    port = free_port()
    js = f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n' if jetstream else ""
    conf = tmp_path / "nats.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\n{js}{config}\n")
    with open(tmp_path / "nats.log", "ab") as log:
        proc = subprocess.Popen([str(nats_server_binary()), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / "nats.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.makefile("rb").readline().startswith(b"INFO"):
                    break
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


tls_block = nats_tls_block


async def round_trip(url: str, options: NatsConnectionOptions) -> bytes:
    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0,
                            **options.connect_kwargs())
    try:
        async def echo(msg: Any) -> None:
            await msg.respond(b"echo:" + msg.data)

        await nc.subscribe("test.echo", cb=echo)
        reply = await nc.request("test.echo", b"hi", timeout=3)
        return bytes(reply.data)
    finally:
        await nc.close()


async def refused(url: str, options: NatsConnectionOptions) -> str:
    errors: list[str] = []

    async def record(exc: Exception) -> None:
        errors.append(f"{type(exc).__name__}: {exc}")

    with pytest.raises((nats.errors.Error, OSError, TimeoutError)) as caught:
        # connect_once closes the socket of a refused attempt (nats.connect would leave it to the GC).
        nc = await single_attempt.connect_once(url, connect_timeout=3, error_cb=record, **options.connect_kwargs())
        await nc.close()
    return " ".join([str(caught.value), *errors])


async def test_tls_with_client_certificate(pki: Path, tmp_path: Path) -> None:
    with configured_server(tmp_path, tls_block(pki)) as addr:
        good = NatsConnectionOptions(tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem",
                                     tls_key=pki / "client-key.pem")
        assert await round_trip(f"nats://{addr}", good) == b"echo:hi"
        assert await round_trip(f"tls://{addr}", good) == b"echo:hi"
        # The server wants a client certificate.
        await refused(f"nats://{addr}", NatsConnectionOptions(tls_ca=pki / "ca.pem"))
        # Our CA is not in the system store: the server's certificate is not trusted without --nats-tls-ca.
        reason = await refused(f"nats://{addr}", NatsConnectionOptions(tls_cert=pki / "client.pem",
                                                                      tls_key=pki / "client-key.pem"))
        assert "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason, reason
        # Another CA does not vouch for this server either.
        await refused(f"nats://{addr}", NatsConnectionOptions(tls_ca=pki / "other-ca.pem", tls_cert=pki / "client.pem",
                                                              tls_key=pki / "client-key.pem"))


async def test_user_password_login(tmp_path: Path) -> None:
    with configured_server(tmp_path, 'authorization { user: "wf", password: "s3cret" }') as addr:
        assert await round_trip(f"nats://{addr}", NatsConnectionOptions(user="wf", password="s3cret")) == b"echo:hi"
        reason = await refused(f"nats://{addr}", NatsConnectionOptions(user="wf", password="wrong"))
        assert "authorization" in reason.lower(), reason
        await refused(f"nats://{addr}", NatsConnectionOptions())


async def test_token_login(tmp_path: Path) -> None:
    with configured_server(tmp_path, 'authorization { token: "t0ken" }') as addr:
        assert await round_trip(f"nats://{addr}", NatsConnectionOptions(token="t0ken")) == b"echo:hi"
        await refused(f"nats://{addr}", NatsConnectionOptions(token="other"))


async def test_nkey_seed_login(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    (tmp_path / "other.nk").write_bytes(other)
    with configured_server(tmp_path, f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}') as addr:
        good = NatsConnectionOptions(nkey_seed=tmp_path / "user.nk")
        assert await round_trip(f"nats://{addr}", good) == b"echo:hi"
        await refused(f"nats://{addr}", NatsConnectionOptions(nkey_seed=tmp_path / "other.nk"))


def test_creds_file_is_handed_to_nats_py(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n")
    assert NatsConnectionOptions(creds=creds).connect_kwargs() == {"user_credentials": str(creds)}
    assert NatsConnectionOptions().connect_kwargs() == {}


@pytest.mark.parametrize(("make", "option", "words"), [
    (lambda d: NatsConnectionOptions(tls_ca=d / "missing.pem"), "--nats-tls-ca", "is not a file"),
    (lambda d: NatsConnectionOptions(tls_key=d / "client-key.pem"), "--nats-tls-key", "needs --nats-tls-cert"),
    (lambda d: NatsConnectionOptions(tls_ca=d / "server.csr"), "--nats-tls-ca", "not a PEM CA bundle"),
    (lambda d: NatsConnectionOptions(tls_cert=d / "client.pem", tls_key=d / "server-key.pem"), "--nats-tls-",
     "cannot use certificate"),
    (lambda d: NatsConnectionOptions(user="u", password="p", token="t"), "--nats-token", "one way to log in"),
    (lambda d: NatsConnectionOptions(password="p"), "--nats-password", "needs --nats-user"),
    (lambda d: NatsConnectionOptions(user="u"), "--nats-user", "needs --nats-password"),
    (lambda d: NatsConnectionOptions(nkey_seed=d / "ca.pem"), "--nats-nkey-seed", "user nkey seed"),
])
def test_bad_settings_name_the_option(pki: Path, make: Any, option: str, words: str) -> None:
    with pytest.raises(InvalidNatsOptions) as caught:
        make(pki).check()
    assert caught.value.option.startswith(option) and words in str(caught.value), str(caught.value)


def kubectl_hosts(kubeconfig: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(Path(sys.executable).parent / "kubectl"), "get", "hosts", "-A", "-o", "json"],
                         capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []


def test_operator_and_host_join_tls_nats_configured_from_the_environment(pki: Path, tmp_path: Path) -> None:
    config = tls_block(pki) + '\nauthorization { user: "fleet", password: "pw" }'
    (tmp_path / "nats").mkdir()
    with configured_server(tmp_path / "nats", config, jetstream=True) as addr, \
            running_apiserver(tmp_path / "api") as kubeconfig:
        common = {"NATS_TLS_CA": str(pki / "ca.pem"), "NATS_TLS_CERT": str(pki / "client.pem"),
                  "NATS_TLS_KEY": str(pki / "client-key.pem"), "NATS_USER": "fleet",
                  "NATS_PASSWORD": "pw", "NATS": f"nats://{addr}"}
        procs = []
        for role, extra in (("operator", {"KUBECONFIG": str(kubeconfig), "LISTEN": "127.0.0.1:0"}),
                            ("host", {"NAME": "tls-host", "HEARTBEAT_INTERVAL": "1"})):
            env = {**os.environ, **{f"WASMFLEET_{role.upper()}_{k}": v for k, v in {**common, **extra}.items()}}
            with open(tmp_path / f"{role}.log", "ab") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "wasmfleet", role], env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        try:
            deadline = time.monotonic() + 60
            ready: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not ready:
                ready = [h for h in kubectl_hosts(kubeconfig)
                         if "tls-host" in json.dumps(h["metadata"]) and any(
                             c.get("type") == "Ready" and c.get("status") == "True"
                             for c in h.get("status", {}).get("conditions", []))]
                time.sleep(0.5)
            logs = "".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))
            assert ready, logs
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

