"""The `wasmfleet up` supervisor with real child processes (small Python programs).

Checks:
- children start in order, each only after the previous one's readiness probe passed; children of one
  batch (hosts) start together and stop together;
- a child that exits while starting fails the start with its name and log path, and earlier children
  are stopped;
- a crashed child is restarted (new pid, restart counted in children.json) and reported; one with a
  minimum restart delay is restarted no sooner; the hosts of a secured fleet (fixed host IDs) wait
  longer than the operator's host expiry plus a beat, so the operator judges them dead first;
- stop terminates children in reverse order (stop_early ones first), including processes they forked;
- the port book keeps ports across runs and replaces a port that got taken;
- the fleet plan starts every part the CLI has, hosts of every group, in dependency order;
- a real `wasmfleet up` killed with SIGKILL (idle, or while stopping its children after a SIGTERM)
  leaves no process of its tree alive a few seconds later: nats-server, the API server, operator,
  hosts, gateway, dashboard and the hosts' wasm worker processes (parent-death signals, bounded stops).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from wasmfleet.embedded import ports, supervising

pytestmark = pytest.mark.timeout(60)

# A child that records its start and stop in a shared file, then serves until SIGTERM.
CHILD = """
import os, signal, sys, time
name, record = sys.argv[1], sys.argv[2]
def note(what):
    with open(record, "a") as f:
        f.write(f"{what} {name}\\n")
def bye(*_):
    note("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
note("start")
if len(sys.argv) > 3 and sys.argv[3] == "fork":
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with open(record + ".grandchild", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
        os._exit(0)
if len(sys.argv) > 3 and sys.argv[3] == "fail":
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


def alive(pid: int) -> bool:
    """Running (a killed orphan may linger as a zombie until init reaps it: that is not running)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def child(tmp: Path, name: str, record: Path, *extra: str, ready: supervising.Probe | None = None) -> supervising.Child:
    return supervising.Child(
        name=name,
        argv=[sys.executable, "-c", CHILD, name, str(record), *extra],
        log_path=tmp / "logs" / f"{name}.log",
        ready=ready,
        ready_timeout_s=10,
    )


def started(record: Path, name: str) -> supervising.Probe:
    async def probe() -> bool:
        return record.exists() and f"start {name}" in record.read_text()

    return probe


async def test_start_in_order_and_stop_in_reverse_with_forked_workers(tmp_path: Path) -> None:
    record = tmp_path / "record"
    lines: list[str] = []
    sup = supervising.Supervisor(
        [
            child(tmp_path, "a", record, ready=started(record, "a")),
            child(tmp_path, "b", record, "fork", ready=started(record, "b")),
            child(tmp_path, "c", record, ready=started(record, "c")),
            child(tmp_path, "d", record, ready=started(record, "d")),
        ],
        report=lines.append,
        state_path=tmp_path / "children.json",
    )
    sup.children[1].stop_early = True  # like the operator: leaves before the hosts
    await sup.start()
    assert record.read_text().split("\n")[:4] == ["start a", "start b", "start c", "start d"]
    for _ in range(50):
        if (tmp_path / "record.grandchild").exists():
            break
        await asyncio.sleep(0.05)
    grandchild = int((tmp_path / "record.grandchild").read_text())
    await sup.stop()
    assert record.read_text().split("\n")[4:8] == ["stop b", "stop d", "stop c", "stop a"]
    await asyncio.sleep(0.1)
    assert not alive(grandchild)
    assert any("[3/4] c ready" in line for line in lines)


async def test_children_of_one_batch_start_together(tmp_path: Path) -> None:
    record = tmp_path / "record"
    # Each is ready only once BOTH started: sequential starting would time out.
    both = started(record, "a"), started(record, "b")

    async def ready() -> bool:
        return all([await p() for p in both])

    a = child(tmp_path, "a", record, ready=ready)
    b = child(tmp_path, "b", record, ready=ready)
    a.batch = b.batch = "hosts"
    a.ready_timeout_s = b.ready_timeout_s = 5
    sup = supervising.Supervisor([a, b], report=lambda _: None)
    await sup.start()
    await sup.stop()


# Stops only once its partner is stopping too: stopped one after the other, the first would be
# SIGKILLed at the end of the grace period and never record its stop.
PARTNER = """
import os, signal, sys, time
name, partner, record = sys.argv[1], sys.argv[2], sys.argv[3]
def note(what):
    with open(record, "a") as f:
        f.write(f"{what} {name}\\n")
def bye(*_):
    note("stopping")
    while f"stopping {partner}" not in open(record).read():
        time.sleep(0.02)
    note("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
note("start")
while True:
    time.sleep(0.05)
"""


async def test_children_of_one_batch_stop_together(tmp_path: Path) -> None:
    record = tmp_path / "record"
    pair = [
        supervising.Child(name=name, argv=[sys.executable, "-c", PARTNER, name, partner, str(record)],
                          log_path=tmp_path / "logs" / f"{name}.log", ready=started(record, name), batch="hosts")
        for name, partner in (("a", "b"), ("b", "a"))
    ]
    sup = supervising.Supervisor(pair, report=lambda _: None, stop_grace_s=3)
    await sup.start()
    await sup.stop()
    lines = record.read_text().splitlines()
    assert "stop a" in lines and "stop b" in lines, lines


async def test_child_failing_to_start_names_itself_and_stops_the_others(tmp_path: Path) -> None:
    record = tmp_path / "record"
    never = supervising.Child(
        name="broken",
        argv=[sys.executable, "-c", CHILD, "broken", str(record), "fail"],
        log_path=tmp_path / "logs" / "broken.log",
        ready=lambda: asyncio.sleep(0, result=False),
    )
    sup = supervising.Supervisor(
        [child(tmp_path, "a", record, ready=started(record, "a")), never], report=lambda _: None
    )
    with pytest.raises(supervising.StartError, match=r"broken exited with status 3.*broken\.log"):
        await sup.start()
    assert "stop a" in record.read_text()


async def test_crashed_child_is_restarted(tmp_path: Path) -> None:
    record = tmp_path / "record"
    lines: list[str] = []
    state = tmp_path / "children.json"
    sup = supervising.Supervisor(
        [child(tmp_path, "a", record, ready=started(record, "a"))], report=lines.append, state_path=state
    )
    await sup.start()
    try:
        first = json.loads(state.read_text())["a"]["pid"]
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            info = json.loads(state.read_text())["a"]
            if info["pid"] != first and any("restarted" in line for line in lines):
                break
            await asyncio.sleep(0.05)
        assert info["restarts"] == 1
        assert info["pid"] != first
        assert any("a exited with status -9" in line for line in lines)
    finally:
        await sup.stop()


async def test_restart_waits_for_the_childs_minimum_delay(tmp_path: Path) -> None:
    record = tmp_path / "record"
    lines: list[str] = []
    state = tmp_path / "children.json"
    slow = dataclasses.replace(child(tmp_path, "a", record, ready=started(record, "a")), min_restart_delay_s=1.5)
    sup = supervising.Supervisor([slow], report=lines.append, state_path=state)
    await sup.start()
    try:
        first = json.loads(state.read_text())["a"]["pid"]
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        while json.loads(state.read_text())["a"]["pid"] == first:
            assert time.monotonic() - killed < 20, lines
            await asyncio.sleep(0.02)
        assert time.monotonic() - killed >= 1.5
        assert any("a exited with status -9" in line and "restarting in 1.5 s" in line for line in lines), lines
    finally:
        await sup.stop()


def test_secured_fleet_hosts_stay_down_past_the_operators_host_expiry(tmp_path: Path) -> None:
    from wasmfleet.cli import main
    from wasmfleet.embedded import fleet
    from wasmfleet.operator.settings import HostHealth

    options = fleet.FleetOptions(data_dir=tmp_path, hosts_per_group=1)
    endpoints = fleet.Endpoints.allocate(options, ports.PortBook(tmp_path / "ports.json"))
    security = fleet.Security.generate(options, 4222)
    secured = fleet.plan(options, endpoints, sorted(main.COMMANDS), security)
    hosts = [c for c in secured if c.name.startswith("host ")]
    assert hosts and all(c.min_restart_delay_s > HostHealth().expiry_s + options.heartbeat_s for c in hosts)
    others = [c for c in secured if not c.name.startswith("host ")]
    assert all(c.min_restart_delay_s == 0 for c in others)
    # Without fixed IDs a restarted host is a new host to the operator: no reason to wait.
    open_fleet = fleet.plan(options, endpoints, sorted(main.COMMANDS))
    assert all(c.min_restart_delay_s == 0 for c in open_fleet)


def test_port_book_keeps_ports_and_replaces_taken_ones(tmp_path: Path) -> None:
    book = ports.PortBook(tmp_path / "ports.json")
    a, b = book.port("a"), book.port("b")
    assert a != b
    book.save()
    again = ports.PortBook(tmp_path / "ports.json")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", b))
        squatter.listen()
        assert again.port("a") == a
        assert again.port("b") != b


def test_plan_starts_every_part_this_build_has(tmp_path: Path) -> None:
    from wasmfleet.cli import main
    from wasmfleet.embedded import fleet

    options = fleet.FleetOptions(data_dir=tmp_path, hosts_per_group=2)
    endpoints = fleet.Endpoints.allocate(options, ports.PortBook(tmp_path / "ports.json"))
    names = [c.name for c in fleet.plan(options, endpoints, sorted(main.COMMANDS))]
    hosts = [f"host {g}-{i}" for g in fleet.DEFAULT_GROUPS for i in (1, 2)]
    assert names == ["nats-server", "apiserver", "operator", *hosts, "gateway", "dashboard"]


WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("while_stopping", [False, True], ids=["idle", "while-stopping"])
async def test_killed_up_leaves_no_process_of_its_tree(tmp_path: Path, while_stopping: bool) -> None:
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        up = subprocess.Popen(
            [WASMFLEET, "up", "--data-dir", str(tmp_path / "fleet"), "--host-groups", "default,edge",
             "--host-workers", "2", "--gateway-port", str(_free_port()), "--dashboard-port", str(_free_port())],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while "wasmfleet is up" not in out.read_text():
            assert up.poll() is None and time.monotonic() < deadline, out.read_text()[-3000:]
            await asyncio.sleep(0.2)
        tree = psutil.Process(up.pid).children(recursive=True)
        names = [p.name() for p in tree]
        assert "nats-server" in names
        # nats, apiserver, operator, 2 hosts, gateway, dashboard, and 2 wasm workers per host.
        assert len(tree) == 7 + 2 * 2, [" ".join(p.cmdline()[-3:]) for p in tree]
        if while_stopping:
            up.send_signal(signal.SIGTERM)
            while "stopping" not in out.read_text().split("wasmfleet is up", 1)[1]:
                await asyncio.sleep(0.05)
        up.kill()
        up.wait()
        t0 = time.monotonic()
        while [p for p in tree if _running(p)] and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.2)
        left = [f"{p.pid} {' '.join(p.cmdline()[-4:])}" for p in tree if _running(p)]
        assert not left, left
        print(f"tree of {len(tree)} gone {time.monotonic() - t0:.1f} s after SIGKILL")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for p in tree:
            if _running(p):
                p.kill()


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
