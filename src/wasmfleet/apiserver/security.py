"""Bearer-token authentication, the token file and the self-signed TLS material."""

from __future__ import annotations

import hmac
import os
import secrets
import subprocess
from pathlib import Path

from wasmfleet.apiserver import errors


def load_or_create_token(data_dir: Path, given: str | None, name: str = "token") -> str:
    """The token in DATA_DIR/<name> (generated there, 0600, on first use), unless one is given."""
    path = data_dir / name
    if given:
        return given
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(token + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return token


def check_bearer(header: str | None, token: str) -> None:
    if not header or not header.startswith("Bearer "):
        raise errors.ApiError(401, "Unauthorized")
    if not hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode()):
        raise errors.ApiError(401, "Unauthorized")


def ensure_tls(data_dir: Path, host: str) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) under DATA_DIR/tls, generated with openssl on first use."""
    tls = data_dir / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = tls / "ca.crt", tls / "ca.key"
    crt, key = tls / "server.crt", tls / "server.key"
    if crt.exists() and key.exists() and ca_crt.exists():
        return ca_crt, crt, key

    def run(*args: str) -> None:
        done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")

    # EC keys: generation takes milliseconds (RSA takes most of a second on a small machine).
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-days", "3650", "-subj", "/CN=wasmfleet-ca",
        "-keyout", str(ca_key), "-out", str(ca_crt))
    csr = tls / "server.csr"
    run("req", *ec, "-subj", "/CN=wasmfleet-apiserver", "-keyout", str(key),
        "-out", str(csr))
    ext = tls / "server.ext"
    names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::1", "::"):
        names.append(f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}")
    ext.write_text(f"subjectAltName={','.join(names)}\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "3650", "-out", str(crt), "-extfile", str(ext))
    os.chmod(key, 0o600)
    os.chmod(ca_key, 0o600)
    return ca_crt, crt, key
