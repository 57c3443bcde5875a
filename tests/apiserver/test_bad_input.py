"""Bad input never gets a 500: malformed JSON/YAML, non-object bodies, wrong apiVersion/kind, invalid
selectors and query values, bad patches, and concurrent writers on one object (no lost update: the loser
of a race gets 409 on its stale resourceVersion)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from apiserver_support import endpoint

from wasmfleet.testing.apiserver import ApiServerProcess

CM = "/api/v1/namespaces/default/configmaps"
WL = "/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/default/workloads"

CASES = [
    ("POST", CM, "application/json", b"{not json", 400),
    ("POST", CM, "application/json", b"[1, 2]", 400),
    ("POST", CM, "application/json", b'"just a string"', 400),
    ("POST", CM, "application/yaml", b"a: [unclosed", 400),
    ("POST", CM, "application/json", b"\xff\xfe", 400),
    ("POST", CM, "application/json", b'{"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}', 400),
    ("POST", CM, "application/json", b'{"kind": "Secret", "metadata": {"name": "x"}}', 400),
    ("POST", CM, "application/json", b'{"metadata": "nope"}', 422),
    ("POST", CM, "application/json", b'{"metadata": {"name": 5}}', 422),
    ("POST", CM, "application/json", b'{"metadata": {"labels": {"a": 1}, "name": "x"}}', 422),
    ("POST", CM, "application/json", b"", 400),
    ("POST", WL, "application/json", b'{"metadata": {"name": "w"}, "spec": "not-an-object"}', 422),
    ("GET", CM + "?labelSelector=a%20in%20(", "", b"", 400),
    ("GET", CM + "?limit=abc", "", b"", 400),
    ("GET", CM + "?watch=maybe", "", b"", 400),
    ("GET", CM + "?watch=true&resourceVersion=abc", "", b"", 400),
    ("GET", CM + "?continue=garbage", "", b"", 400),
    ("PATCH", CM + "/missing", "application/merge-patch+json", b"{}", 404),
    ("PUT", CM, "application/json", b"{}", 405),
    ("DELETE", "/api/v1/namespaces/default/configmaps/missing", "", b"", 404),
    ("POST", "/api/v1/namespaces/default/configmaps/x/status", "application/json", b"{}", 404),
    ("GET", "/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/default/workloads/x/scale", "", b"", 404),
]


@pytest.mark.parametrize(("method", "path", "ctype", "body", "status"), CASES,
                         ids=[f"{m} {p[-30:]} {b[:20]!r}" for m, p, _, b, _ in CASES])
async def test_bad_input_gets_a_client_error(server: ApiServerProcess, method: str, path: str, ctype: str,
                                             body: bytes, status: int) -> None:
    url, headers, ctx = endpoint(server.kubeconfig)
    if ctype:
        headers = dict(headers, **{"Content-Type": ctype})
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.request(method, url + path, data=body or None, ssl=ctx) as resp:
        payload = await resp.json(content_type=None)
        assert resp.status == status, payload
        assert payload["kind"] == "Status" and payload["code"] == status


async def test_concurrent_writers_lose_no_update(server: ApiServerProcess) -> None:
    url, headers, ctx = endpoint(server.kubeconfig)
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{url}{CM}", ssl=ctx, json={"metadata": {"name": "counter"},
                                                               "data": {"n": "0"}}) as resp:
            assert resp.status == 201

        async def increment() -> int:
            conflicts = 0
            while True:
                async with session.get(f"{url}{CM}/counter", ssl=ctx) as resp:
                    obj = await resp.json()
                obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
                async with session.put(f"{url}{CM}/counter", ssl=ctx, json=obj) as resp:
                    if resp.status == 200:
                        return conflicts
                    assert resp.status == 409
                    conflicts += 1

        results = await asyncio.gather(*(increment() for _ in range(20)))
        async with session.get(f"{url}{CM}/counter", ssl=ctx) as resp:
            final = await resp.json()
        assert final["data"]["n"] == "20"
        assert sum(results) > 0  # the race really happened


async def test_rules_spanning_fields_are_enforced_with_their_path(server: ApiServerProcess) -> None:
    """The CRDs' CEL rules (here: two identical unnamed wasi:keyvalue entries break both hostInterfaces rules)
    give one 422 naming spec.hostInterfaces once per failed rule."""
    url, headers, ctx = endpoint(server.kubeconfig)
    kv = {"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"]}
    body = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload", "metadata": {"name": "two-kv"},
            "spec": {"components": [{"name": "a", "image": "file:///a.wasm"}], "hostInterfaces": [kv, kv]}}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url + WL, ssl=ctx, json=body) as resp:
            payload = await resp.json()
            assert resp.status == 422, payload
        causes = payload["details"]["causes"]
        assert [c["field"] for c in causes] == ["spec.hostInterfaces", "spec.hostInterfaces"]
        assert "must be unique" in causes[0]["message"] and "must have a name" in causes[1]["message"]
        body["spec"]["hostInterfaces"] = [dict(kv, name="cache"), dict(kv, name="sessions")]
        async with session.post(url + WL, ssl=ctx, json=body) as resp:
            assert resp.status == 201
