"""A deliberately plain HTTP client for the contract suite: exact status codes, raw bodies, no retries.

Reads a kubeconfig (bearer token or client certificate, CA data or file) so the same tests run against
the embedded server and against a real cluster.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Resp:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _materialize(data: str | None, path: str | None, tmp: Path, name: str) -> str | None:
    if data:
        out = tmp / name
        out.write_bytes(base64.b64decode(data))
        return str(out)
    return path


class Kube:
    def __init__(self, kubeconfig: Path, token_override: str | None = None, no_auth: bool = False) -> None:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = doc["current-context"]
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {}) or {}
        self.kubeconfig = Path(kubeconfig)
        self.server = cluster["server"].rstrip("/")
        self._tmp = Path(tempfile.mkdtemp(prefix="contract-kube-"))
        self.ssl: ssl.SSLContext | None = None
        if self.server.startswith("https"):
            ca = _materialize(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"),
                              self._tmp, "ca.crt")
            self.ssl = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
            if cluster.get("insecure-skip-tls-verify"):
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
            cert = _materialize(user.get("client-certificate-data"), user.get("client-certificate"), self._tmp,
                                "client.crt")
            key = _materialize(user.get("client-key-data"), user.get("client-key"), self._tmp, "client.key")
            if cert and key and not no_auth and token_override is None:
                self.ssl.load_cert_chain(cert, key)
        self.token = None if no_auth else (token_override or user.get("token"))

    def with_token(self, token: str) -> Kube:
        return Kube(self.kubeconfig, token_override=token)

    def without_auth(self) -> Kube:
        return Kube(self.kubeconfig, no_auth=True)

    def _request(self, method: str, path: str, body: Any, ctype: str, accept: str | None,
                 query: dict[str, Any] | None, raw: bytes | None) -> urllib.request.Request:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = raw
        if data is None and body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        req.add_header("Accept", accept or "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        return req

    def req(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
            accept: str | None = None, query: dict[str, Any] | None = None, raw: bytes | None = None) -> Resp:
        request = self._request(method, path, body, ctype, accept, query, raw)
        try:
            with urllib.request.urlopen(request, context=self.ssl, timeout=30) as resp:
                text = resp.read()
                return Resp(resp.status, _parse(text), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return Resp(exc.code, _parse(exc.read()), dict(exc.headers))

    def get(self, path: str, **kw: Any) -> Resp:
        return self.req("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Resp:
        return self.req("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Resp:
        return self.req("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, ctype: str = "application/merge-patch+json", **kw: Any) -> Resp:
        return self.req("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.req("DELETE", path, body, **kw)

    def watch(self, path: str, query: dict[str, Any], timeout_s: float = 10.0) -> Iterator[dict[str, Any]]:
        """Watch events as dicts; a non-200 answer yields one synthetic {"type": "HTTP", "status": N}."""
        request = self._request("GET", path, None, "", None, dict(query, watch="true"), None)
        try:
            resp = urllib.request.urlopen(request, context=self.ssl, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            yield {"type": "HTTP", "status": exc.code, "object": _parse(exc.read())}
            return
        with resp:
            while True:
                try:
                    line = resp.readline()
                except TimeoutError:
                    return
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)


def _parse(text: bytes) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text.decode(errors="replace")
