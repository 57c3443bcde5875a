"""examples/service on a `wasmfleet up` fleet: a TCP service and the HTTP component that asks it.

The example's two components are built from their sources in examples/service (componentize-py, through
tests/components/build.py, as examples/service/build.sh does) and copied next to a copy of
examples/service/workload.yaml (its `file:` images are relative to it), in a directory the hosts may read
(`up --allow-file-root`). Then, with `wasmfleet apply` on a 1-host fleet (all real processes):
1. the Workload becomes Ready with status.service state `running`, restartCount 0;
2. requests through the gateway reach the component, which asks the service over TCP on 127.0.0.1:7000
   of the workload's private loopback: `/` counts 1, 2, 3 (the service's memory, not the component's:
   each request may run on a fresh instance), `/set/color/blue` then `/get/color` answers `blue`, an
   unknown command gets the service's error line;
3. a second Workload with the same HTTP component and no service, on the same host, cannot reach the
   first's port: its component gets `connection-refused` (502), while the first still answers;
4. `wasmfleet logs` shows the service's "listening" line.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component
from tests.e2e.test_fleet import REPO, WF, Fleet, running_up, until

pytestmark = pytest.mark.timeout(420)

EXAMPLE = REPO / "examples" / "service"
HOSTNAME = "service.localhost"
STRANGER = "stranger.localhost"


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A copy of the example with its two components built from the sources in examples/service."""
    target = tmp_path / "example"
    target.mkdir()
    shutil.copy(build_component("service-example"), target / "service.wasm")
    shutil.copy(build_component("service-example-front"), target / "front.wasm")
    shutil.copy(EXAMPLE / "workload.yaml", target / "workload.yaml")
    return target


@pytest.fixture
async def fleet(tmp_path: Path, example_dir: Path) -> AsyncIterator[Fleet]:
    async with running_up(tmp_path / "fleet", "--host-groups", "default", "--hosts-per-group", "1",
                          "--allow-file-root", str(example_dir), graceful=True) as fleet:
        yield fleet


async def get(session: aiohttp.ClientSession, fleet: Fleet, host: str, path: str) -> tuple[int, str]:
    async with session.get(fleet.gateway + path, headers={"Host": host}) as r:
        return r.status, (await r.text()).strip()


def ready(workload: dict[str, Any]) -> bool:
    conditions = workload.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def test_service_example(fleet: Fleet, example_dir: Path) -> None:
    out = await fleet.run(*WF, "apply", "-f", str(example_dir / "workload.yaml"))
    assert out.strip() == "workload.runtime.wasmcloud.dev/kv-service created"

    async def ready_and_running() -> dict[str, Any] | None:
        workload: dict[str, Any] = await fleet.kubectl_json("get", "workload", "kv-service")
        service = workload.get("status", {}).get("service", {})
        return workload if ready(workload) and service.get("state") == "running" else None

    workload = await until(ready_and_running, 120, "the Workload Ready with its service running")
    assert workload["status"]["service"]["restartCount"] == 0, workload["status"]["service"]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        # The service may still be starting (componentize-py) when the route exists: 502 until it listens.
        async def first_count() -> str | None:
            status, body = await get(session, fleet, HOSTNAME, "/")
            assert status in (200, 502), (status, body)
            return body if status == 200 else None

        assert await until(first_count, 60, "the service's first answer") == "1"
        assert [await get(session, fleet, HOSTNAME, "/") for _ in range(2)] == [(200, "2"), (200, "3")]
        assert await get(session, fleet, HOSTNAME, "/set/color/blue") == (200, "ok")
        assert await get(session, fleet, HOSTNAME, "/get/color") == (200, "blue")
        status, body = await get(session, fleet, HOSTNAME, "/frobnicate")
        assert status == 200 and body.startswith("error: unknown command 'frobnicate'"), body

        # Another workload on the same host, same component, no service: the port is not its.
        manifest = yaml.safe_load((example_dir / "workload.yaml").read_text())
        manifest["metadata"]["name"] = "kv-stranger"
        del manifest["spec"]["service"]
        manifest["spec"]["hostInterfaces"][0]["config"]["host"] = STRANGER
        stranger = example_dir / "stranger.yaml"
        stranger.write_text(yaml.safe_dump(manifest))
        await fleet.run(*WF, "apply", "-f", str(stranger))

        async def stranger_ready() -> bool:
            return ready(await fleet.kubectl_json("get", "workload", "kv-stranger"))

        await until(stranger_ready, 60, "the second Workload Ready")
        status, body = await get(session, fleet, STRANGER, "/")
        assert (status, body) == (502, "service unreachable on 127.0.0.1:7000: connection-refused")
        assert await get(session, fleet, HOSTNAME, "/get/hits") == (200, "3")

    logs = await fleet.run(*WF, "logs", "kv-service", "--data-dir", str(fleet.data))
    assert "service listening on 127.0.0.1:7000 (key/value)" in logs, logs
