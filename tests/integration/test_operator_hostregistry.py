"""Host liveness judgements of the operator's host registry (pure; real clock, short expiries).

Checks:
- a heartbeat makes a host ALIVE; silence beyond the expiry makes it DEAD; a leave announcement or a
  new host with the same name makes it DEAD at once; on_change reports judgement changes.
- while the operator's NATS connection is down every judgement is UNKNOWN; after reconnecting, hosts
  alive before get a full expiry to report again; unknown hosts are UNKNOWN during the startup grace.
- the expiry stretches to three of the host's own heartbeat intervals once its cadence is known.
- Host object names are RFC 1123 versions of the friendly name.
"""

from __future__ import annotations

import time

from wasmfleet.bus import messages
from wasmfleet.operator import hostregistry, metrics, settings

L = hostregistry.Liveness


def registry(expiry: float = 0.3) -> tuple[hostregistry.HostRegistry, list[tuple[str, bool]]]:
    changes: list[tuple[str, bool]] = []
    reg = hostregistry.HostRegistry(
        settings.HostHealth(expiry_s=expiry), metrics.Metrics(), lambda h, c: changes.append((h, c))
    )
    return reg, changes


def hb(host_id: str, name: str = "") -> messages.HostHeartbeat:
    return messages.HostHeartbeat(id=host_id, friendly_name=name or f"name-{host_id}")


def test_alive_dead_leaving_and_replaced() -> None:
    reg, changes = registry()
    reg.set_connected(True)
    time.sleep(0.35)  # past the connect grace
    reg.observe(hb("a"))
    assert reg.liveness("a") is L.ALIVE and ("a", True) in changes
    time.sleep(0.35)
    assert reg.liveness("a") is L.DEAD
    assert reg.liveness("never-heard") is L.DEAD

    reg.observe(hb("b", "same-name"))
    reg.observe(hb("b", "same-name"), leaving=True)
    assert reg.liveness("b") is L.DEAD

    reg.observe(hb("c", "other-name"))
    reg.observe(hb("d", "other-name"))  # restarted process: new ID, same friendly name
    assert reg.liveness("c") is L.DEAD and reg.liveness("d") is L.ALIVE
    assert ("c", True) in changes
    assert reg.record_by_name("other-name").heartbeat.id == "d"  # type: ignore[union-attr]


def test_disconnected_means_unknown_and_reconnect_gives_grace() -> None:
    reg, _ = registry()
    reg.set_connected(True)
    reg.observe(hb("a"))
    reg.set_connected(False)
    assert reg.liveness("a") is L.UNKNOWN
    time.sleep(0.5)  # longer than the expiry, but we could not have heard anything
    assert reg.liveness("a") is L.UNKNOWN
    reg.set_connected(True)
    assert reg.liveness("a") is L.ALIVE  # a full expiry to report again
    assert reg.liveness("unknown-host") is L.UNKNOWN  # within the grace after connecting
    time.sleep(0.35)
    assert reg.liveness("a") is L.DEAD and reg.liveness("unknown-host") is L.DEAD


def test_expiry_follows_the_hosts_own_cadence() -> None:
    reg, _ = registry(expiry=0.1)
    reg.set_connected(True)
    for _ in range(3):
        reg.observe(hb("slow"))
        time.sleep(0.12)
    rec = reg.record("slow")
    assert rec is not None
    assert 0.3 < reg.expiry_for(rec) < 0.6  # three intervals of ~0.12 s, not the 0.1 s floor
    assert reg.liveness("slow") is L.ALIVE  # 0.12 s of silence is normal for this host


def test_object_names_are_rfc1123() -> None:
    assert hostregistry.object_name(hb("x", "Brave_Otter 0001")) == "brave-otter-0001"
    assert hostregistry.object_name(messages.HostHeartbeat(id="ABC.def")) == "abc.def"
