"""A guest that answers without ever creating a response body is served an empty body.

The guest (tests/components/no-body-wat) calls response-outparam.set with a response whose body it
never asks for, as some toolchains do. Through `wasmfleet serve` (the host's own serving runtime),
checks: 204 comes back with no body and no error; 200 comes back with Content-Length 0; the
keep-alive connection carries the next request (the host did not leave a half-written response).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

REPO = Path(__file__).resolve().parents[2]


def test_answer_without_body_is_empty() -> None:
    guest = build_component("no-body-wat")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "wasmfleet"), "serve", str(guest), "--addr", "127.0.0.1:0",
         "--cache-dir", str(REPO / ".cache" / "runtime-test-components")],
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(2):  # the same connection twice
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (204, b"")
            conn.request("GET", "/2")
            resp = conn.getresponse()
            assert (resp.status, resp.getheader("content-length"), resp.read()) == (200, "0", b"")
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
