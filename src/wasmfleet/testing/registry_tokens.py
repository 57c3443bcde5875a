"""A real bearer-token service for docker-registry's `auth: token` mode (the Docker Hub / GHCR scheme).

The registry answers 401 with `WWW-Authenticate: Bearer realm=..,service=..,scope=..`; a client asks
this service (with basic credentials, or none for anonymous pulls when allowed) and gets a JWT
signed RS256 with a self-signed certificate the registry trusts (`rootcertbundle`). Signing uses the
openssl CLI, so no Python crypto dependency is needed. Runs in a thread; started by
`testing.oci_registry_server.running_registry(..., token_users=...)`.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ISSUER = "wasmfleet-test-issuer"
SERVICE = "wasmfleet-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    key: Path
    cert: Path
    cert_der_b64: str


def make_signing_key(directory: Path) -> SigningKey:
    key, cert = directory / "token.key", directory / "token.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=wasmfleet-token-issuer"],
        check=True, capture_output=True,
    )
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True)
    return SigningKey(key, cert, base64.b64encode(der.stdout).decode())


def sign_token(key: SigningKey, subject: str, access: list[dict[str, object]], ttl_s: int = 300) -> str:
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [key.cert_der_b64]}
    claims = {
        "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + ttl_s, "nbf": now - 10, "iat": now,
        "jti": secrets.token_hex(8), "access": access,
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key.key)],
        input=signing_input.encode(), check=True, capture_output=True,
    ).stdout
    return f"{signing_input}.{_b64url(signature)}"


def _requested_access(scopes: list[str]) -> list[dict[str, object]]:
    access: list[dict[str, object]] = []
    for scope in scopes:
        for item in scope.split(" "):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


class TokenService:
    """Grants every requested scope to a known user (or to anonymous callers when `anonymous_pull`,
    pull only); refuses wrong credentials with 401."""

    def __init__(self, key: SigningKey, users: dict[str, str], *, anonymous_pull: bool = False) -> None:
        self.key = key
        self.users = users
        self.anonymous_pull = anonymous_pull
        self.issued = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                user = service.authenticate(self.headers.get("Authorization", ""))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                access = _requested_access(query.get("scope", []))
                if user == "":
                    access = [dict(a, actions=[x for x in a["actions"] if x == "pull"])  # type: ignore[attr-defined]
                              for a in access]
                token = sign_token(service.key, user or "anonymous", access)
                service.issued += 1
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-service", daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def authenticate(self, header: str) -> str | None:
        """The user name, "" for an allowed anonymous caller, None to refuse."""
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            return user if self.users.get(user) == password else None
        return "" if self.anonymous_pull else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
