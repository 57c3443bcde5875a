"""The dashboard in a real browser (Debian's headless chromium, driven by playwright) on a real fleet.

`wasmfleet up` runs nats-server, the API server, the operator, 3 hosts, the gateway and the dashboard
(all real processes); the component is examples/hello. One scenario, no page reloads (a marker set
in the page must survive every step):
1. `up` prints the dashboard's URL; the workloads page connects its live stream;
2. `wasmfleet apply` a 3-replica deployment: the 3 workloads appear and turn Ready on the open page;
3. kill -9 one host: the overview shows that host not Ready, and the workloads page shows its replica
   Ready on another host;
4. once the replicas are spread again, a bounded load run through the gateway: the per-workload
   page's request-rate and p99 charts (gateway) and the replica's own chart (its host's /metrics)
   show traffic, and its log section is filled from the host over NATS (no error);
5. the placement map lists every host and the deployment's replicas.
Screenshots of each step are kept in the test's temp dir (tmp_path/screenshots).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_fleet import EXAMPLE, HOSTNAME, WF, Fleet, running_up

pytestmark = pytest.mark.timeout(300)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_RELOAD = "window.__noReload === 1"


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """`wasmfleet up` with 3 hosts in one group, its gateway on port 18000 and its dashboard on 18088."""
    async with running_up(tmp_path / "fleet", "--host-groups", "default", "--hosts-per-group", "3",
                          "--gateway-port", "18000", "--dashboard-port", "18088", graceful=True) as f:
        yield f


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def load(gateway: str, seconds: float, concurrency: int = 4) -> tuple[int, int]:
    """Requests to hello.localhost for `seconds`; (answered 200, failed)."""
    ok = failed = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, failed
        while time.monotonic() < deadline:
            try:
                async with session.get(gateway + "/", headers={"Host": HOSTNAME}) as resp:
                    await resp.read()
                    ok += resp.status == 200
                    failed += resp.status != 200
            except (aiohttp.ClientError, TimeoutError):
                failed += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok, failed


async def test_dashboard_follows_the_fleet_live_in_a_browser(fleet: Fleet, browser: Any, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dashboard = "http://127.0.0.1:" + str(json.loads((fleet.data / "ports.json").read_text())["dashboard"])
    # 1. up prints where the dashboard is, and the page connects
    assert any(f"{dashboard}/" in line for line in fleet.output), "".join(fleet.output)
    # bypass_csp: playwright's wait_for_function evaluates strings, which the dashboard's CSP forbids (as
    # it should); the page's own script is unaffected.
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{dashboard}/workloads")
    await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    await page.evaluate("window.__noReload = 1")

    # 2. apply: the workloads appear and turn Ready without a reload
    await fleet.run(*WF, "apply", "-f", str(EXAMPLE))
    await page.wait_for_function("document.querySelectorAll('tr[data-workload][data-ready=true]').length === 3",
                                 timeout=60_000)
    assert await page.evaluate(NO_RELOAD)
    rows = await page.eval_on_selector_all(
        "tr[data-workload]", "rs => rs.map(r => [r.dataset.workload, r.dataset.host])")
    assert len({host for _, host in rows}) == 3, f"3 replicas on 3 hosts: {rows}"
    assert "wasi:http/incoming-handler" in await page.inner_text("#live")
    await page.screenshot(path=str(shots / "1-workloads-ready.png"), full_page=True)

    # 3. kill -9 a host: it turns not Ready on the overview, its replica moves (workloads page)
    hosts = (await fleet.kubectl_json("get", "hosts"))["items"]
    victim = next(h for h in hosts if h["httpPort"] == fleet.port_of("default-1"))
    victim_name = victim["metadata"]["name"]
    moved_name = next(name for name, host in rows if host == victim_name)
    overview = await context.new_page()
    await overview.goto(f"{dashboard}/")
    await overview.wait_for_selector(f'tr[data-host="{victim_name}"][data-ready=true]', timeout=10_000)
    await overview.evaluate("window.__noReload = 1")
    # `up` restarts the host a few seconds later: record the not-Ready state whenever it shows.
    await overview.evaluate(f"""window.__sawDown = false; setInterval(() => {{
        if (document.querySelector('tr[data-host="{victim_name}"][data-ready=false]')) window.__sawDown = true;
    }}, 50)""")
    os.kill(fleet.children()["host default-1"]["pid"], signal.SIGKILL)
    await overview.wait_for_function("window.__sawDown === true", timeout=30_000)
    await overview.screenshot(path=str(shots / "2-host-not-ready.png"), full_page=True)
    await page.wait_for_function(
        f"""(() => {{ const r = document.querySelector('tr[data-workload="{moved_name}"]');
            return r && r.dataset.ready === 'true' && r.dataset.host !== '{victim_name}'; }})()""",
        timeout=30_000)
    assert await page.evaluate(NO_RELOAD) and await overview.evaluate(NO_RELOAD)
    await page.screenshot(path=str(shots / "3-replica-moved.png"), full_page=True)

    # 4. a bounded load run: the workload page's charts show traffic; its logs come over NATS. `up` brings
    # the killed host back and the operator spreads the replicas again (replacing one): wait for 3 Ready
    # replicas on 3 hosts before picking one to look at.
    await page.wait_for_function(
        """(() => { const rs = [...document.querySelectorAll('tr[data-workload][data-ready=true]')];
            return rs.length === 3 && new Set(rs.map(r => r.dataset.host)).size === 3; })()""", timeout=60_000)
    looked_at = await page.eval_on_selector("tr[data-workload][data-ready=true]", "r => r.dataset.workload")
    detail = await context.new_page()
    await detail.goto(f"{dashboard}/workloads/default/{looked_at}")
    await detail.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    ok, failed = await load(fleet.gateway, seconds=6.0)
    assert ok > 50, f"load run: {ok} answered, {failed} failed"
    await detail.wait_for_function(
        "Number(document.querySelector('figure[data-series=rps][data-source=route]').dataset.peak || 0) > 1",
        timeout=20_000)
    await detail.wait_for_function(
        "Number(document.querySelector('figure[data-series=p99]').dataset.peak || 0) > 0", timeout=10_000)
    # ... and the replica's own chart, from its host's /metrics (the gateway balances over 3 replicas)
    await detail.wait_for_function(
        "Number(document.querySelector('figure[data-source=replica]').dataset.peak || 0) > 0", timeout=10_000)
    logs = await detail.inner_text("#logs")
    assert logs != "loading…" and "NATS" not in logs and "not answering" not in logs, logs
    await detail.screenshot(path=str(shots / "4-traffic.png"), full_page=True)

    # 5. the placement map: every host, the deployment's 3 replicas
    await overview.goto(f"{dashboard}/placement")
    await overview.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    cells = await overview.eval_on_selector_all(
        "td[data-cell]", "cs => cs.map(c => [c.dataset.cell, Number(c.textContent.replace(/\\D+/g, '') || 0)])")
    assert sum(n for cell, n in cells if cell.endswith("|default/hello")) == 3, cells
    assert {cell.split("|")[0] for cell, _ in cells} == {h["metadata"]["name"] for h in hosts}
    await overview.screenshot(path=str(shots / "5-placement.png"), full_page=True)
    await overview.goto(f"{dashboard}/")
    await overview.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    await overview.screenshot(path=str(shots / "0-overview.png"), full_page=True)
    assert not errors, f"script errors in the page: {errors}"
    print(f"\nscreenshots in {shots}")
