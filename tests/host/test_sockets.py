"""wasi:sockets 0.2 in the host runtime, with a real guest (tests/components/sockets-py, componentize-py
with generated wasi:sockets bindings) run through runtime.commands, as `wasmfleet run` runs it.

Checks:
- TCP echo between two guests of one workload over its private loopback (IPv4, IPv6, and by the
  name "localhost"), every wait through wasi:io/poll (accept and connect answer would-block and
  the guest polls); each side sees the other's address and port;
- the private loopback is AF_UNIX files in a 0700 directory, works across processes (a server
  guest in another Python process) and in a directory deeper than AF_UNIX paths allow; another
  workload cannot connect (connection-refused) nor is blocked from binding the same port;
- cancelling a guest that waits in poll for a client ends it promptly and frees its port;
- a bind to a port already taken is address-in-use (in one guest and across guests) and the host
  runs on; the port is free again once the holder drops its socket;
- the host's real loopback is reachable only through allowedHostLoopbackPorts ("P", "P/tcp"; not
  "P/udp"); a non-loopback address only through allowedHosts (else access-denied);
- UDP echo between two guests (and to a native UDP echo on the host loopback when allowed);
- ip-name-lookup: localhost always, other names only through allowedIpNameLookups or allowedHosts;
- heartbeats advertise wasi:sockets with its seven interfaces; a long command run calls its
  epoch-deadline (cancel check) callback about once per 10 ticks, not on every epoch check;
- a listen backlog holds further connects (would-block, polled) until the listener accepts;
- options round-trip and the state-machine errors (invalid-state, not-in-progress,
  concurrency-conflict, invalid-argument, address-not-bindable), inheritance by accepted sockets.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_harness import build
from sockets_harness import Workload

from wasmfleet.host.runtime import specs


@pytest.fixture(scope="module")
def guest() -> Path:
    return build("sockets-py")


@pytest.fixture
def workload(guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path) -> Workload:
    return Workload(guest, persistent_settings, tmp_path / "wl-a" / "net")


@pytest.fixture
def other_workload(guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path) -> Workload:
    return Workload(guest, persistent_settings, tmp_path / "wl-b" / "net")


class NativeEcho:
    """A plain Python TCP or UDP echo server on a real address of this machine."""

    def __init__(self, host: str, kind: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, kind)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]
        if kind == socket.SOCK_STREAM:
            self.sock.listen()
        target = self._serve_tcp if kind == socket.SOCK_STREAM else self._serve_udp
        threading.Thread(target=target, daemon=True).start()

    def _serve_tcp(self) -> None:
        with self.sock:
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                with conn:
                    while data := conn.recv(65536):
                        conn.sendall(b"native:" + data)

    def _serve_udp(self) -> None:
        with self.sock:
            while True:
                try:
                    data, peer = self.sock.recvfrom(65536)
                except OSError:
                    return
                self.sock.sendto(b"native:" + data, peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def native_tcp() -> Iterator[NativeEcho]:
    server = NativeEcho("127.0.0.1", socket.SOCK_STREAM)
    yield server
    server.close()


def _public_ip() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))
        ip: str = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if ip.startswith("127.") else ip


def _port(line: str) -> int:
    return int(line.rsplit(":", 1)[1])


@pytest.mark.parametrize(("server_args", "host"), [
    ((), "127.0.0.1"), (("ipv6",), "::1"), ((), "localhost"),
], ids=["ipv4", "ipv6", "localhost"])
def test_tcp_echo_between_guests_of_one_workload(workload: Workload, server_args: tuple[str, ...],
                                                 host: str) -> None:
    server = workload.start("tcp-echo-server", 8080, 1, *server_args)
    listening = server.wait_line("listening")
    assert _port(listening) == 8080
    lines = workload.run("tcp-client", host, 8080, "hello over the private loopback")
    assert "reply: hello over the private loopback" in lines
    client_port = _port(next(line for line in lines if line.startswith("local:")))
    assert 49152 <= client_port <= 65535
    assert _port(next(line for line in lines if line.startswith("remote:"))) == 8080
    accepted = server.wait_line("accepted")
    assert accepted.split()[1].endswith(f":{client_port}")  # the server sees the client's port
    assert server.finish()[-1] == "done"


def test_private_loopback_is_unix_sockets_in_a_private_directory(workload: Workload) -> None:
    server = workload.start("tcp-echo-server", 8081, 1)
    server.wait_line("listening")
    directory = workload.loopback_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_ISSOCK((directory / "tcp-8081").stat().st_mode)
    assert "reply: x" in workload.run("tcp-client", "127.0.0.1", 8081, "x")
    server.finish()
    assert not (directory / "tcp-8081").exists()  # removed when the listener is dropped


def test_a_deep_loopback_directory_works(guest: Path, persistent_settings: specs.RuntimeSettings,
                                         tmp_path: Path) -> None:
    """Host data directories can be deeper than an AF_UNIX path allows (107 bytes)."""
    deep = Workload(guest, persistent_settings, tmp_path / ("d" * 60) / ("e" * 60) / "net")
    assert len(str(deep.loopback_dir / "tcp-8086")) > 108
    server = deep.start("tcp-echo-server", 8086, 1)
    server.wait_line("listening")
    assert "reply: deep" in deep.run("tcp-client", "127.0.0.1", 8086, "deep")
    server.finish()
    udp = deep.start("udp-echo-server", 8086, 1)
    udp.wait_line("listening")
    assert "reply: deep from 127.0.0.1:8086" in deep.run("udp-client", "127.0.0.1", 8086, "deep")
    udp.finish()


def test_another_workload_cannot_connect_and_may_bind_the_same_port(
    workload: Workload, other_workload: Workload
) -> None:
    server = workload.start("tcp-echo-server", 8082, 1)
    server.wait_line("listening")
    assert other_workload.run("tcp-client", "127.0.0.1", 8082, "intruder")[-1] == "error: connection-refused"
    assert other_workload.run("bind", 8082) == ["bound 127.0.0.1:8082"]
    assert "reply: mine" in workload.run("tcp-client", "127.0.0.1", 8082, "mine")
    server.finish()


def test_loopback_works_across_processes(workload: Workload) -> None:
    """The server guest runs in another Python process with the same loopback directory (as a
    workload's components do in worker processes): the client here reaches it."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from wasmfleet.host.runtime import commands, specs
        spec = specs.ComponentSpec(workload_id="wl-a", name="server", wasm_path=Path({str(workload.wasm)!r}),
                                   network=specs.NetworkAccess(Path({str(workload.loopback_dir)!r})))
        command = commands.Command(spec, specs.RuntimeSettings(cache_dir=Path({str(workload.settings.cache_dir)!r}),
                                   engine=specs.EngineSettings.from_environment(__import__("os").environ)))
        sys.exit(command.run(["s", "tcp-echo-server", "8083", "1"], commands.CommandStdio.of_process()).exit_code)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening")
        assert "reply: across processes" in workload.run("tcp-client", "127.0.0.1", 8083, "across processes")
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def test_bind_to_a_taken_port_is_address_in_use(workload: Workload) -> None:
    lines = workload.run("bind-twice", 8084)
    assert lines == ["first 0.0.0.0:8084", "second: address-in-use", "after drop: 0.0.0.0:8084"]
    server = workload.start("tcp-echo-server", 8085, 1)
    server.wait_line("listening")
    assert workload.run("bind", 8085) == ["error: address-in-use"]
    # The host runs on: the listener still serves.
    assert "reply: still here" in workload.run("tcp-client", "127.0.0.1", 8085, "still here")
    server.finish()


def test_cancel_stops_a_guest_waiting_to_accept_and_frees_its_port(workload: Workload) -> None:
    """A service is stopped by cancelling its run: a guest waiting in poll for a client ends
    within about a second, and its listening port is released for the next run."""
    server = workload.start("tcp-echo-server", 8087, 1)
    server.wait_line("listening")
    started = time.monotonic()
    server.stop()
    assert server.outcome is not None and server.outcome.cancelled
    assert time.monotonic() - started < 5
    assert not (workload.loopback_dir / "tcp-8087").exists()
    again = workload.start("tcp-echo-server", 8087, 1)
    again.wait_line("listening")
    assert "reply: again" in workload.run("tcp-client", "127.0.0.1", 8087, "again")
    again.finish()


def test_host_loopback_only_through_allowed_loopback_ports(
    guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path, native_tcp: NativeEcho
) -> None:
    def client(*ports: str) -> list[str]:
        w = Workload(guest, persistent_settings, tmp_path / f"w{len(ports)}{ports}" / "net",
                     allowed_host_loopback_ports=ports)
        return w.run("tcp-client", "127.0.0.1", native_tcp.port, "hi")

    assert client()[-1] == "error: connection-refused"
    assert client(f"{native_tcp.port}/udp")[-1] == "error: connection-refused"
    assert client(str(native_tcp.port))[-1] == "reply: native:hi"
    assert client(f"{native_tcp.port}/tcp")[-1] == "reply: native:hi"


def test_outbound_to_other_addresses_follows_allowed_hosts(
    guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path
) -> None:
    ip = _public_ip()
    assert ip is not None, "this test needs a non-loopback IPv4 address on the machine"
    server = NativeEcho(ip, socket.SOCK_STREAM)
    try:
        def client(*allowed: str) -> str:
            w = Workload(guest, persistent_settings, tmp_path / f"o{len(allowed)}" / "net", allowed_hosts=allowed)
            return w.run("tcp-client", ip, server.port, "out")[-1]

        assert client() == "error: access-denied"
        assert client("10.9.8.7") == "error: access-denied"
        assert client(ip) == "reply: native:out"
        assert client(ip.rsplit(".", 1)[0] + ".*", "x") == "reply: native:out"
        assert client("*") == "reply: native:out"
    finally:
        server.close()


def test_udp_echo_between_guests(workload: Workload) -> None:
    server = workload.start("udp-echo-server", 9000, 1)
    assert _port(server.wait_line("listening")) == 9000
    lines = workload.run("udp-client", "127.0.0.1", 9000, "ping")
    assert "sent 1" in lines
    assert "reply: ping from 127.0.0.1:9000" in lines
    client_port = _port(next(line for line in lines if line.startswith("local:")))
    assert server.wait_line("echoed").endswith(f":{client_port}")
    server.finish()


def test_udp_to_the_host_loopback_needs_an_allowed_udp_port(
    guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path
) -> None:
    native = NativeEcho("127.0.0.1", socket.SOCK_DGRAM)
    try:
        allowed = Workload(guest, persistent_settings, tmp_path / "u1" / "net",
                           allowed_host_loopback_ports=(f"{native.port}/udp",))
        lines = allowed.run("udp-client", "127.0.0.1", native.port, "dgram")
        assert f"reply: native:dgram from 127.0.0.1:{native.port}" in lines
        tcp_only = Workload(guest, persistent_settings, tmp_path / "u2" / "net",
                            allowed_host_loopback_ports=(f"{native.port}/tcp",))
        # Nobody on the private loopback and the host's is not allowed: the datagram is dropped.
        lines = tcp_only.run("udp-client", "127.0.0.1", native.port, "dgram")
        assert lines[-1] == "timeout"
    finally:
        native.close()


def test_name_lookup_policy(guest: Path, persistent_settings: specs.RuntimeSettings, tmp_path: Path) -> None:
    name = socket.gethostname()
    expected = {info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}

    def lookup(target: str, **policy: tuple[str, ...]) -> list[str]:
        w = Workload(guest, persistent_settings, tmp_path / f"n{len(os.listdir(tmp_path))}" / "net", **policy)
        return w.run("lookup", target)

    assert lookup("localhost") == ["address: 127.0.0.1", "address: 0:0:0:0:0:0:0:1"]
    assert lookup(name) == ["error: access-denied"]
    assert lookup(name, allowed_ip_name_lookups=("other.example",)) == ["error: access-denied"]
    for policy in ({"allowed_ip_name_lookups": (name,)}, {"allowed_hosts": (name,)}, {"allowed_hosts": ("*",)}):
        found = {line.removeprefix("address: ") for line in lookup(name, **policy)}
        assert found == {a if ":" not in a else ":".join(f"{int(w, 16):x}" for w in _expand(a)) for a in expected}
    assert lookup("bad name!", allowed_hosts=("*",)) == ["error: invalid-argument"]
    assert lookup("no-such-host.invalid", allowed_hosts=("*",))[-1] in (
        "error: name-unresolvable", "error: permanent-resolver-failure", "error: temporary-resolver-failure")


def _expand(ipv6: str) -> list[str]:
    import ipaddress

    return ipaddress.IPv6Address(ipv6).exploded.split(":")


def test_options_and_state_errors(workload: Workload) -> None:
    lines = workload.run("options")
    assert lines == [
        "family ipv4",
        "keep-alive True 30000000000 5000000000 3",
        "hop-limit 32",
        "buffers 65536 32768",
        "zero-idle invalid-argument",
        "zero-count invalid-argument",
        "zero-hop invalid-argument",
        "zero-backlog invalid-argument",
        "zero-buffer invalid-argument",
        "accept-unbound invalid-state",
        "listen-unbound invalid-state",
        "finish-bind-unstarted not-in-progress",
        "finish-connect-unstarted not-in-progress",
        "local-unbound invalid-state",
        "remote-unconnected invalid-state",
        "bind-v6-on-v4 invalid-argument",
        "bind-public address-not-bindable",
        "connect-unspecified invalid-argument",
        "bind-again-in-progress concurrency-conflict",
        "listening-before False",
        "finish-bind-after not-in-progress",
        "listening-after True",
        "ephemeral True",
        "shutdown-listener invalid-state",
        "backlog-while-listening ok",
        "connect-listener invalid-state",
        "connect-again concurrency-conflict",
        "finish-connect-twice not-in-progress",
        "peer-keep-alive-default False",
        "accepted-inherits True 32 3",
        "peer-remote-is-listener True",
        "accepted-remote-is-peer True",
        "udp ipv6 7 20000 30000",
        "udp-stream-unbound invalid-state",
        "udp-zero-hop invalid-argument",
        "udp-local-unbound invalid-state",
    ]


def test_listen_backlog_holds_connects_until_accepted(workload: Workload) -> None:
    """Backlog 1: the kernel queues backlog + 1 connections; the others stay would-block (the
    guest polls them) until the late accepts make room, then all complete."""
    lines = workload.run("backlog", 5)
    assert lines == ["connected-before-accept 2 waiting 3", "connected 5 accepted 5"]


def test_a_long_command_checks_for_cancel_once_per_ten_ticks(
    workload: Workload, native_tcp: NativeEcho, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The epoch-deadline callback of a command extends its deadline (it once wrote the uint8
    update kind as an int, clobbering the extension: past 100 ms every epoch check called back
    into Python and guests ran ~50x slower). Counted by wrapping the callback."""
    from wasmfleet.host.runtime import commands, cpu_quota

    real = cpu_quota.EpochCallback
    calls = [0]

    def counting(fn: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            calls[0] += 1
            return fn(*args)

        return real(wrapped)

    monkeypatch.setattr(cpu_quota, "EpochCallback", counting)
    w = dataclasses.replace(workload, loopback_dir=tmp_path / "long" / "net",
                            allowed_host_loopback_ports=(str(native_tcp.port),))
    started = time.monotonic()
    lines = w.run("bench-client", native_tcp.port, 3000, 64)
    elapsed = time.monotonic() - started
    assert any(line.startswith("median_us") for line in lines)
    tick = w.settings.epoch_tick_s * commands.CANCEL_CHECK_TICKS
    assert calls[0] <= elapsed / tick * 2 + 10, (calls[0], elapsed)


def test_heartbeats_advertise_wasi_sockets() -> None:
    from wasmfleet.host.runtime import capabilities

    sockets = [g for g in capabilities.provided_interfaces() if (g.namespace, g.package) == ("wasi", "sockets")]
    assert len(sockets) == 1
    assert set(sockets[0].interfaces) == {
        "instance-network", "ip-name-lookup", "network", "tcp", "tcp-create-socket", "udp", "udp-create-socket"}
