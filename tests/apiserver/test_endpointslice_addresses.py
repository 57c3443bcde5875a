"""The embedded API server refuses the EndpointSlice addresses a real kube-apiserver refuses.

Against a real `wasmfleet apiserver` process, over HTTP as a client sees it:
- a slice with a loopback, unspecified, link-local or link-local multicast address, a wrong-family
  address, a single-label FQDN or an endpoint without addresses gets 422 naming the field
  (``endpoints[i].addresses[j]``) and Kubernetes' reason; nothing is stored;
- the same slice with usable addresses (private IPv4, ULA IPv6, a dotted FQDN) is created;
- an update that introduces a loopback address is refused too (kubectl apply path: PUT/PATCH).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from apiserver_support import endpoint

from wasmfleet.testing.apiserver import ApiServerProcess

SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def slice_body(name: str, address_type: str, *addresses: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": address_type,
        "endpoints": [{"addresses": a, "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": "http", "port": 9000, "protocol": "TCP"}],
    }


REFUSED = [
    ("IPv4", ["127.0.0.1"], "endpoints[0].addresses[0]",
     'Invalid value: "127.0.0.1": may not be in the loopback range'),
    ("IPv4", ["0.0.0.0"], "endpoints[0].addresses[0]", 'Invalid value: "0.0.0.0": may not be unspecified'),
    ("IPv4", ["169.254.1.1"], "endpoints[0].addresses[0]", "may not be in the link-local range"),
    ("IPv4", ["224.0.0.9"], "endpoints[0].addresses[0]", "may not be in the link-local multicast range"),
    ("IPv4", ["fd00::1"], "endpoints[0].addresses[0]", "must be a valid IPv4 address"),
    ("IPv6", ["::1"], "endpoints[0].addresses[0]", "may not be in the loopback range"),
    ("IPv6", ["fe80::1"], "endpoints[0].addresses[0]", "may not be in the link-local range"),
    ("FQDN", ["localhost"], "endpoints[0].addresses[0]", "should be a domain with at least two segments"),
    ("IPv4", [], "endpoints[0].addresses", "Required value: must contain at least 1 address"),
]


@pytest.mark.parametrize(("address_type", "addresses", "field", "message"), REFUSED,
                         ids=[f"{t}-{a[0] if a else 'none'}" for t, a, _, _ in REFUSED])
async def test_refused_addresses_get_422_naming_the_field(
    server: ApiServerProcess, address_type: str, addresses: list[str], field: str, message: str
) -> None:
    url, headers, ctx = endpoint(server.kubeconfig)
    body = slice_body("bad", address_type, addresses)
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url + SLICES, json=body, ssl=ctx) as resp:
            payload = await resp.json()
            assert resp.status == 422, payload
        causes = payload["details"]["causes"]
        fields = [c["field"] for c in causes]
        assert field in fields, causes
        assert message in payload["message"], payload["message"]
        async with session.get(url + SLICES + "/bad", ssl=ctx) as resp:
            assert resp.status == 404


async def test_usable_addresses_are_stored_and_a_bad_update_is_refused(server: ApiServerProcess) -> None:
    url, headers, ctx = endpoint(server.kubeconfig)
    async with aiohttp.ClientSession(headers=headers) as session:
        for name, kind, addresses in [("v4", "IPv4", ["10.0.0.7", "192.168.3.4"]), ("v6", "IPv6", ["fd00::7"]),
                                      ("dns", "FQDN", ["host-a.hosts.example"])]:
            async with session.post(url + SLICES, json=slice_body(name, kind, addresses), ssl=ctx) as resp:
                assert resp.status == 201, await resp.text()
        async with session.get(url + SLICES + "/v4", ssl=ctx) as resp:
            current = await resp.json()
        current["endpoints"][0]["addresses"] = ["127.0.0.1"]
        async with session.put(url + SLICES + "/v4", json=current, ssl=ctx) as resp:
            payload = await resp.json()
            assert resp.status == 422, payload
            assert "may not be in the loopback range" in payload["message"]
        patch = {"endpoints": [{"addresses": ["::1"], "conditions": {"ready": True}}]}
        async with session.patch(url + SLICES + "/v6", json=patch, ssl=ctx,
                                 headers={"Content-Type": "application/merge-patch+json"}) as resp:
            assert resp.status == 422, await resp.text()
        async with session.get(url + SLICES + "/v4", ssl=ctx) as resp:
            assert (await resp.json())["endpoints"][0]["addresses"] == ["10.0.0.7", "192.168.3.4"]
