"""`wasmfleet up` is locked down by default, and its own tools still work (real processes end to end).

On a fleet from `wasmfleet up` (3 hosts in group default):
- DATA_DIR/nats/nats-server.conf and credentials.json are 0600 and hold one user per host ID it
  started, plus operator, logs and data;
- an anonymous NATS client is refused;
- the hello example applies and serves through the gateway (hosts allow examples/), and
  `wasmfleet logs wd/hello` reads the logs over NATS with up's `logs` identity;
- a Workload whose image is file:///etc/hostname ends in ERROR naming --allow-file-root (never fetched);
- the operator's and the gateway's /metrics answer 401 without a token and 200 with DATA_DIR/metrics-token.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
import pytest
import yaml

from wasmfleet.bus import single_attempt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.test_fleet import EXAMPLE, HOSTNAME, WF, Fleet, fleet, until  # noqa: F401 - fleet is a fixture

pytestmark = pytest.mark.timeout(240)


async def status_of(session: aiohttp.ClientSession, url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as resp:
        return resp.status


async def test_up_fleet_is_locked_down_and_usable(fleet: Fleet, tmp_path: Path) -> None:  # noqa: F811
    nats_dir = fleet.data / "nats"
    for name in ("nats-server.conf", "credentials.json"):
        assert stat.S_IMODE((nats_dir / name).stat().st_mode) == 0o600, name
    config = json.loads((nats_dir / "nats-server.conf").read_text())
    users = {u["user"] for account in config["accounts"].values() for u in account["users"]}
    hosts = (await fleet.kubectl_json("get", "hosts"))["items"]
    assert users == {"operator", "logs", "data", *(f"host-{h['hostId']}" for h in hosts)}, users
    ports = json.loads((fleet.data / "ports.json").read_text())
    nats_url = f"nats://127.0.0.1:{ports['nats']}"

    async def quiet(_exc: Exception) -> None:
        return None

    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await single_attempt.connect_once(nats_url, error_cb=quiet)  # leaves no socket behind

    out = await fleet.run(*WF, "apply", "-f", str(EXAMPLE))
    assert "hello created" in out
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def serving() -> bool:
            try:
                async with session.get(fleet.gateway + "/", headers={"Host": HOSTNAME}) as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await until(serving, 60, "hello serving through the gateway")
        await fleet.run(*WF, "logs", "wd/hello", "--data-dir", str(fleet.data))  # exits 0: NATS login accepted

        evil = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
                "metadata": {"name": "read-etc", "namespace": "default"},
                "spec": {"components": [{"name": "c", "image": "file:///etc/hostname"}]}}
        manifest = tmp_path / "evil.yaml"
        manifest.write_text(yaml.safe_dump(evil))
        await fleet.run(*WF, "apply", "-f", str(manifest))

        async def refused() -> str:
            wl: dict[str, Any] = await fleet.kubectl_json("get", "workload", "read-etc")
            messages = " ".join(c.get("message", "") for c in wl.get("status", {}).get("conditions", []))
            return messages if "--allow-file-root" in messages else ""

        message = await until(refused, 60, "the host to refuse file:///etc/hostname")
        assert "outside the roots this host allows" in message

        token = (fleet.data / "metrics-token").read_text().strip()
        for url in (f"http://127.0.0.1:{ports['operator']}/metrics", f"{fleet.gateway}/metrics"):
            assert await status_of(session, url) == 401, url
            assert await status_of(session, url, "wrong") == 401, url
            assert await status_of(session, url, token) == 200, url
