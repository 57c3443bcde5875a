"""A throwaway PKI for NATS over TLS in tests and benchmarks, made with openssl (EC keys: milliseconds)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, days: int = 1) -> Path:
    """Writes ca.pem, server.pem/-key.pem (for 127.0.0.1 and localhost), client.pem/-key.pem (signed
    by ca) and other-ca.pem (a CA that signed nothing here) into `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-days", str(days),
                 "-subj", f"/CN=test {ca}", cwd=directory)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                 cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-days", str(days), "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory)
    return directory


def nats_tls_block(pki: Path) -> str:
    """nats-server's `tls` block: its certificate from `pki`, and client certificates required."""
    return (f'tls {{ cert_file: "{pki / "server.pem"}", key_file: "{pki / "server-key.pem"}", '
            f'ca_file: "{pki / "ca.pem"}", verify: true }}')
