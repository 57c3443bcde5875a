"""The whole system end to end, as a user drives it: `wasmfleet up`, kubectl, the gateway, real wasm.

One scenario on one fleet (nats-server, API server, operator, 3 hosts, gateway; all real processes started
by `wasmfleet up`; the component is examples/hello built from its WAT source):
1. `wasmfleet apply` a 3-replica WorkloadDeployment;
2. `kubectl get hosts` lists the 3 hosts with their HOSTID / HOSTGROUP / READY columns;
3. requests through the gateway are answered by all 3 replicas (each on its own host);
4. kill -9 one host process: within 5 s requests succeed again and its Workload is Ready on another host;
5. `kubectl scale` to 5 replicas: 5 Ready Workloads;
6. a new version rolled out under steady load: no failed request;
7. `wasmfleet delete`: the gateway answers 503 for the hostname;
8. Ctrl-C (SIGINT) stops every child process and `up` exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello" / "deployment.yaml"
HOSTNAME = "hello.localhost"
WF = [sys.executable, "-c", "from wasmfleet.cli.main import main; main()"]
BIN = Path(sys.executable).parent


@dataclass
class Fleet:
    data: Path
    proc: asyncio.subprocess.Process
    gateway: str
    output: list[str]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.data / "kubeconfig"), "PATH": f"{BIN}:{os.environ['PATH']}"}

    def children(self) -> dict[str, Any]:
        return dict(json.loads((self.data / "children.json").read_text()))

    def port_of(self, child: str) -> int:
        return int(json.loads((self.data / "ports.json").read_text())[f"host:{child}"])

    async def run(self, *argv: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, f"{argv[-3:]} failed: {err.decode()}"
        return out.decode()

    async def kubectl_json(self, *args: str) -> Any:
        return json.loads(await self.run(str(BIN / "kubectl"), *args, "-o", "json"))


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_up(data: Path, *args: str, graceful: bool = False) -> AsyncIterator[Fleet]:
    """`wasmfleet up --data-dir DATA ARGS...` until it reports it is up; stopped afterwards (SIGINT
    with `graceful`, else SIGKILL), and none of its children left behind, even when a test failed."""
    proc = await asyncio.create_subprocess_exec(
        *WF, "up", "--data-dir", str(data), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []

    async def read_until_up() -> None:
        assert proc.stdout is not None
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError("wasmfleet up exited:\n" + "".join(output))
            output.append(line)
            if "Ctrl-C stops everything" in line:
                return

    await asyncio.wait_for(read_until_up(), 120)
    drain = asyncio.create_task(_drain(proc, output))
    gateway = "http://127.0.0.1:" + str(json.loads((data / "ports.json").read_text())["gateway"])
    fleet = Fleet(data, proc, gateway, output)
    try:
        yield fleet
    finally:
        if proc.returncode is None:
            if graceful:
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30 if graceful else 0)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        drain.cancel()
        for info in fleet.children().values():
            if info["pid"]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(info["pid"], signal.SIGKILL)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with running_up(tmp_path / "fleet", "--host-groups", "default", "--hosts-per-group", "3") as f:
        yield f


async def _drain(proc: asyncio.subprocess.Process, output: list[str]) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        output.append(line.decode())


async def hit(session: aiohttp.ClientSession, base: str) -> tuple[int, str]:
    try:
        async with session.get(base + "/", headers={"Host": HOSTNAME}) as r:
            body = await r.text()
            return r.status, r.headers.get("X-Wasmfleet-Host", "") if r.status == 200 else body
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, str(exc)


async def ready_workloads(fleet: Fleet) -> list[dict[str, Any]]:
    items = (await fleet.kubectl_json("get", "workloads"))["items"]
    return [
        w for w in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in w.get("status", {}).get("conditions", []))
        and not w["metadata"].get("deletionTimestamp")
    ]


async def test_fleet_end_to_end(fleet: Fleet, tmp_path: Path) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # 1. apply
        out = await fleet.run(*WF, "apply", "-f", str(EXAMPLE))
        assert out.strip() == "workloaddeployment.runtime.wasmcloud.dev/hello created"

        # 2. kubectl get hosts, with the printer columns
        table = (await fleet.run(str(BIN / "kubectl"), "get", "hosts")).splitlines()
        assert table[0].split() == ["NAME", "HOSTID", "HOSTGROUP", "ENVIRONMENT", "READY", "AGE"]
        rows = [r.split() for r in table[1:]]
        assert len(rows) == 3 and all(r[2] == "default" and r[3] == "True" for r in rows), table

        # 3. all three replicas answer through the gateway
        async def three_ready() -> bool:
            return len(await ready_workloads(fleet)) == 3

        await until(three_ready, 30, "3 Ready workloads")

        async def all_replicas_answer() -> bool:
            seen = Counter([await hit(session, fleet.gateway) for _ in range(12)])
            return all(code == 200 for code, _ in seen) and len(seen) == 3

        await until(all_replicas_answer, 15, "answers from 3 distinct hosts")

        # 4. kill -9 a host: requests succeed again within 5 s, its workload moves
        hosts = (await fleet.kubectl_json("get", "hosts"))["items"]
        victim_port = fleet.port_of("default-1")
        victim_id = next(h["hostId"] for h in hosts if h["httpPort"] == victim_port)
        on_victim = [w["metadata"]["name"] for w in await ready_workloads(fleet) if w["status"]["hostId"] == victim_id]
        assert len(on_victim) == 1, "the 3 replicas should be spread over the 3 hosts"
        os.kill(fleet.children()["host default-1"]["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        results: list[tuple[float, int]] = []
        moved_after: float | None = None
        while time.monotonic() - killed_at < 8:
            code, _ = await hit(session, fleet.gateway)
            results.append((time.monotonic() - killed_at, code))
            if moved_after is None:
                wl = {w["metadata"]["name"]: w for w in await ready_workloads(fleet)}
                if on_victim[0] in wl and wl[on_victim[0]]["status"]["hostId"] != victim_id:
                    moved_after = time.monotonic() - killed_at
        failed = [(round(t, 2), code) for t, code in results if code != 200]
        assert all(t <= 5.0 for t, _ in failed), f"requests still failing after 5 s: {failed}"
        assert moved_after is not None and moved_after <= 5.0, f"workload moved after {moved_after} s"
        print(f"\nkill -9: {len(results)} requests, failed {failed}, workload elsewhere after {moved_after:.2f} s")

        # 5. scale to 5
        await fleet.run(str(BIN / "kubectl"), "scale", "workloaddeployment", "hello", "--replicas=5")

        async def five_ready() -> bool:
            return len(await ready_workloads(fleet)) == 5

        await until(five_ready, 30, "5 Ready workloads")

        # 6. roll out a new version under steady load: not one failed request
        manifest = yaml.safe_load(EXAMPLE.read_text())
        manifest["spec"]["replicas"] = 5
        manifest["spec"]["template"]["metadata"]["annotations"] = {"example.com/version": "2"}
        component = manifest["spec"]["template"]["spec"]["components"][0]
        component["image"] = f"file://{EXAMPLE.parent / 'hello.wasm'}"
        v2 = tmp_path / "hello-v2.yaml"
        v2.write_text(yaml.safe_dump(manifest))
        before = await fleet.kubectl_json("get", "workloaddeployment", "hello")
        old_rs = before["status"].get("currentReplicaSet")
        load: Counter[int] = Counter()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                code, _ = await hit(session, fleet.gateway)
                load[code] += 1

        clients = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(1)
        await fleet.run(*WF, "apply", "-f", str(v2))

        async def rolled_out() -> bool:
            wd = await fleet.kubectl_json("get", "workloaddeployment", "hello")
            status = wd.get("status", {})
            if status.get("currentReplicaSet") in (None, old_rs):
                return False
            names = [w["metadata"]["name"] for w in await ready_workloads(fleet)]
            all_wl = (await fleet.kubectl_json("get", "workloads"))["items"]
            return len(names) == 5 and all(n.startswith(status["currentReplicaSet"]) for n in names) and len(
                all_wl) == 5

        await until(rolled_out, 60, "the new version to replace the old one")
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*clients)
        assert set(load) == {200}, f"requests failed during the rollout: {dict(load)}"
        assert load[200] > 20
        print(f"rolling update under load: {dict(load)}")

        # 7. delete -> 503
        await fleet.run(*WF, "delete", "workloaddeployment", "hello")

        async def unknown() -> bool:
            code, body = await hit(session, fleet.gateway)
            return code == 503 and HOSTNAME in body

        await until(unknown, 15, "503 after delete")

    # 8. Ctrl-C stops everything
    children = fleet.children()
    fleet.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(fleet.proc.wait(), 60) == 0
    for name, info in children.items():
        try:
            os.kill(info["pid"], 0)
        except ProcessLookupError:
            continue
        status = Path(f"/proc/{info['pid']}/status").read_text()
        assert "State:\tZ" in status, f"{name} still running after Ctrl-C"
