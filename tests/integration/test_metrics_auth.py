"""/metrics behind TokenReview + SubjectAccessReview, against the real embedded API server.

- The API server answers TokenReview for its two tokens (admin: system:masters; DATA_DIR/metrics-token:
  wasmfleet:metrics-reader) and not for others; SubjectAccessReview allows the metrics reader `get
  /metrics` only and system:masters everything; both are create-only (405 for GET) and a malformed
  review is 400; the metrics token authenticates no ordinary API request (401).
- A host agent with --metrics-auth answers /metrics: no token 401, a wrong token 401, the metrics
  token and the admin token 200; /healthz stays open.
- A user the API server authenticates but does not allow gets 403.
- The verdict cache bounds API calls: 30 scrapes (10 at once) with one token cost one TokenReview and
  one SubjectAccessReview; after the TTL the next scrape asks again; beyond max_entries the oldest
  token is forgotten. An unreachable API server is 503 and not cached.
- `wasmfleet operator --metrics-auth` and `wasmfleet gateway --metrics-auth` (real processes) answer
  401 without a token and 200 with the metrics token.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from wasmfleet.host.agent import Agent
from wasmfleet.host.settings import BusSettings, HostSettings, LifecycleSettings, ServingSettings
from wasmfleet.kube import client, errors
from wasmfleet.observability import metrics_auth
from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port, running_nats_server

WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Path]:
    with running_apiserver(tmp_path / "api") as kubeconfig:
        yield kubeconfig


@pytest.fixture
async def kube(api: Path) -> AsyncIterator[client.KubeClient]:
    kc = await client.KubeClient.from_kubeconfig(api)
    try:
        yield kc
    finally:
        await kc.close()


def metrics_token(api: Path) -> str:
    return (api.parent / "metrics-token").read_text().strip()


def admin_token(api: Path) -> str:
    return (api.parent / "token").read_text().strip()


async def token_review(kube: client.KubeClient, token: str) -> dict[str, Any]:
    return await kube.post(metrics_auth.TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1",
                                                        "kind": "TokenReview", "spec": {"token": token}})


async def access_review(kube: client.KubeClient, user: str, groups: list[str], **attributes: Any) -> dict[str, Any]:
    return await kube.post(metrics_auth.SUBJECT_ACCESS_REVIEWS, {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, **attributes}})


async def test_api_server_reviews_its_tokens(api: Path, kube: client.KubeClient) -> None:
    admin = await token_review(kube, admin_token(api))
    assert admin["kind"] == "TokenReview" and admin["status"]["authenticated"] is True
    assert admin["status"]["user"]["username"] == "wasmfleet-admin"
    assert "system:masters" in admin["status"]["user"]["groups"]
    reader = (await token_review(kube, metrics_token(api)))["status"]
    assert reader["authenticated"] is True and reader["user"]["username"] == "wasmfleet:metrics-reader"
    assert (await token_review(kube, "nope"))["status"]["authenticated"] is False

    get_metrics = {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
    allowed = await access_review(kube, "wasmfleet:metrics-reader", ["system:authenticated"], **get_metrics)
    assert allowed["status"]["allowed"] is True
    secrets = {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "default"}}
    denied = await access_review(kube, "wasmfleet:metrics-reader", ["system:authenticated"], **secrets)
    assert denied["status"]["allowed"] is False
    assert (await access_review(kube, "someone", ["system:authenticated"], **get_metrics))["status"]["allowed"] is False
    assert (await access_review(kube, "wasmfleet-admin", ["system:masters"], **secrets))["status"]["allowed"] is True

    with pytest.raises(errors.KubeError) as wrong_verb:
        await kube._call("GET", metrics_auth.TOKEN_REVIEWS)
    assert wrong_verb.value.status == 405
    with pytest.raises(errors.KubeError) as malformed:
        await kube.post(metrics_auth.SUBJECT_ACCESS_REVIEWS, {"spec": {"user": "x"}})
    assert malformed.value.status == 400 and "exactly one of" in malformed.value.message


async def test_metrics_token_is_not_an_api_token(api: Path) -> None:
    url = client_url(api)
    headers = {"Authorization": f"Bearer {metrics_token(api)}"}
    async with aiohttp.ClientSession() as session, session.get(
        f"{url}/apis/runtime.wasmcloud.dev/v1alpha1/hosts", headers=headers, ssl=False
    ) as resp:
        assert resp.status == 401


def client_url(api: Path) -> str:
    return str(yaml.safe_load(api.read_text())["clusters"][0]["cluster"]["server"])


@pytest.fixture
async def guarded_host(tmp_path: Path, api: Path) -> AsyncIterator[Agent]:
    with running_nats_server(tmp_path / "nats") as url:
        agent = Agent(HostSettings(
            bus=BusSettings(nats_url=url, heartbeat_interval_s=1, reconnect_wait_s=0.1),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, metrics_port=0, metrics_auth_kubeconfig=api),
            lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
            runtime_cache_dir=tmp_path / "compiled",
        ))
        await agent.start()
        try:
            yield agent
        finally:
            await agent.shutdown()


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_host_metrics_need_an_allowed_token(api: Path, guarded_host: Agent) -> None:
    base = f"http://127.0.0.1:{guarded_host.metrics_port}"
    assert (await get(f"{base}/metrics"))[0] == 401
    assert (await get(f"{base}/metrics", "not-a-token"))[0] == 401
    status, body = await get(f"{base}/metrics", metrics_token(api))
    assert status == 200 and "wasmfleet_host_heartbeats" in body
    assert (await get(f"{base}/metrics", admin_token(api)))[0] == 200
    assert (await get(f"{base}/healthz"))[0] == 200


async def test_cache_bounds_api_calls(api: Path, kube: client.KubeClient) -> None:
    calls: list[str] = []

    async def counting_post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        calls.append(path.rsplit("/", 1)[1])
        return await kube.post(path, body)

    now = [0.0]
    guard = metrics_auth.MetricsGuard(counting_post, ttl_s=10, max_entries=2, clock=lambda: now[0])
    token = f"Bearer {metrics_token(api)}"
    verdicts = await asyncio.gather(*(guard.verdict(token) for _ in range(10)))
    verdicts += [await guard.verdict(token) for _ in range(20)]
    assert {v.status for v in verdicts} == {200}
    assert calls == ["tokenreviews", "subjectaccessreviews"]
    now[0] = 10.5  # past the TTL: asked again
    assert (await guard.verdict(token)).status == 200
    assert calls.count("tokenreviews") == 2
    # A bad token is remembered too (one review), and two more tokens push the first one out.
    for _ in range(3):
        assert (await guard.verdict("Bearer bad")).status == 401
    assert calls.count("tokenreviews") == 3
    assert (await guard.verdict(f"Bearer {admin_token(api)}")).status == 200
    assert (await guard.verdict(token)).status == 200  # metrics token was the oldest: evicted, asked again
    assert calls.count("tokenreviews") == 5


async def test_a_known_user_without_the_rule_gets_403(api: Path, kube: client.KubeClient) -> None:
    """The embedded server knows no such user, so the test renames the reviewed user in the
    SubjectAccessReview the guard sends (the real server then decides, and refuses)."""

    async def as_someone_else(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == metrics_auth.SUBJECT_ACCESS_REVIEWS:
            body = {**body, "spec": {**body["spec"], "user": "team-a:dashboard", "groups": ["system:authenticated"]}}
        return await kube.post(path, body)

    verdict = await metrics_auth.MetricsGuard(as_someone_else).verdict(f"Bearer {metrics_token(api)}")
    assert verdict.status == 403
    assert verdict.reason == "Forbidden: wasmfleet:metrics-reader may not get /metrics"


async def test_unreachable_api_server_is_503_and_not_cached() -> None:
    asked = 0

    async def broken(path: str, body: dict[str, Any]) -> dict[str, Any]:
        nonlocal asked
        asked += 1
        raise errors.Unreachable(0, "Unreachable", "API server unreachable")

    guard = metrics_auth.MetricsGuard(broken)
    assert (await guard.verdict("Bearer t")).status == 503
    assert (await guard.verdict("Bearer t")).status == 503
    assert asked == 2


async def wait_for_status(url: str, token: str | None, deadline_s: float = 60) -> int:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return (await get(url, token))[0]
        except aiohttp.ClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_operator_and_gateway_protect_metrics(tmp_path: Path, api: Path) -> None:
    op_port, gw_port = free_port(), free_port()
    with running_nats_server(tmp_path / "nats") as nats_url, \
            open(tmp_path / "op.log", "wb") as op_log, open(tmp_path / "gw.log", "wb") as gw_log:
        procs = [
            subprocess.Popen([WASMFLEET, "operator", "--kubeconfig", str(api), "--nats", nats_url,
                              "--listen", f"127.0.0.1:{op_port}", "--metrics-auth"],
                             stdout=subprocess.DEVNULL, stderr=op_log),
            subprocess.Popen([WASMFLEET, "gateway", "--kubeconfig", str(api), "--port", str(gw_port),
                              "--metrics-auth"],
                             stdout=subprocess.DEVNULL, stderr=gw_log),
        ]
        try:
            for port in (op_port, gw_port):
                url = f"http://127.0.0.1:{port}/metrics"
                assert await wait_for_status(url, None) == 401, (tmp_path / "op.log").read_text()
                assert await wait_for_status(url, "wrong") == 401
                assert await wait_for_status(url, metrics_token(api)) == 200
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(20)
