"""Benchmark of the protocol codec (`wasmfleet.bus.messages.encode` / `decode`), not a test.

Measures encode and decode per second of the two hot messages: the HostHeartbeat every host
publishes every interval (built as a real host builds it, with the interfaces it advertises) and a
full WorkloadStartRequest (two components, credentials, volumes, host interfaces).

Peers measured in the same run, for ratios:
- `earlier codec`: the hand-written pydantic mapping the .proto schema replaced
  (bench/legacy_bus_codec.py, on the same values): the codec must be at least as fast as it.
- `pb json_format`: protobuf's JSON mapping alone on the generated message (no pydantic model):
  what the codec costs at least while it uses json_format.
- `pydantic json`: pydantic's own JSON (model_dump_json / model_validate_json) on the same models,
  the Rust-backed path the old hand-written mapping rode on (no protobuf naming or int64 rules).

    .venv/bin/python bench/bus_codec.py [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import legacy_bus_codec as legacy

from wasmfleet.bus import messages

try:  # absent before the codec moved onto protobuf: the bench then measures messages and pydantic only
    from google.protobuf import json_format

    from wasmfleet.bus import pb as _pb  # noqa: F401
except ImportError:  # pragma: no cover
    json_format = None


def heartbeat() -> messages.HostHeartbeat:
    from wasmfleet.host import heartbeating

    imports, exports = heartbeating.split_interfaces(heartbeating.provided_interfaces())
    return messages.HostHeartbeat(
        id="6c0f9f6e-0a53-4c2e-9d51-1f4b8e0d2a11", hostname="10.0.0.12", friendly_name="brave-fox-1234",
        version="0.1.0", labels={"hostgroup": "default", "zone": "a"},
        started_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC), os_arch="x86_64", os_name="linux",
        os_kernel="6.1.0-18-amd64", system_cpu_usage=12.5, system_memory_total=16_777_216_000,
        system_memory_free=8_000_000_000, component_count=12, workload_count=10,
        imports=imports, exports=exports, http_port=8000, environment="prod",
    )


def start_request() -> messages.WorkloadStartRequest:
    def component(name: str) -> messages.Component:
        return messages.Component(
            image=f"registry:5000/{name}:1.0", name=name, pool_size=4, max_invocations=1000,
            max_concurrency=2, image_pull_policy=messages.ImagePullPolicy.IF_NOT_PRESENT,
            image_pull_secret=messages.ImagePullSecret(username="robot", password="s3cret"),
            local_resources=messages.LocalResources(
                memory_limit_mb=128, config={"greeting": "hello", "level": "info"},
                environment={"RUST_LOG": "info", "REGION": "eu"}, allowed_hosts=["api.example.com"],
                volume_mounts=[messages.VolumeMount(name="cache", mount_path="/cache")],
            ),
        )

    return messages.WorkloadStartRequest(
        workload_id="0b8d3c9e-5f0a-4f5e-8a6e-3e2b9f1c7d40",
        workload=messages.Workload(
            namespace="default", name="hello-7f9c", annotations={"runtime.wasmcloud.dev/rs": "hello-7f9c"},
            wit_world=messages.WitWorld(
                components=[component("hello"), component("greeter")],
                host_interfaces=[
                    messages.WitInterface(namespace="wasi", package="http", version="0.2.0",
                                          interfaces=["incoming-handler"], config={"host": "hello.local"}),
                    messages.WitInterface(namespace="wasi", package="keyvalue", version="0.2.0-draft",
                                          interfaces=["store", "atomics"], name="cache"),
                    messages.WitInterface(namespace="wasi", package="config", interfaces=["store"]),
                ],
            ),
            volumes=[messages.Volume(name="cache", empty_dir=messages.EmptyDirVolume())],
        ),
    )


def rate(fn: Callable[[], Any], seconds: float, windows: int = 5) -> float:
    """Calls per second of fn: the best of `windows` windows sharing `seconds` (the machine is
    shared, so the best window is the one least disturbed by others)."""
    for _ in range(50):
        fn()
    best = 0.0
    for _ in range(windows):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / windows
        while True:
            for _ in range(20):
                fn()
            n += 20
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def measure(name: str, msg: messages.Message, seconds: float) -> None:
    cls = type(msg)
    wire = messages.encode(msg)
    rows: list[tuple[str, float, float]] = []
    rows.append(("messages.encode/decode", rate(lambda: messages.encode(msg), seconds),
                 rate(lambda: messages.decode(cls, wire), seconds)))
    old_cls = getattr(legacy, cls.__name__)
    old_msg = old_cls.model_validate(msg.model_dump())
    old_wire = legacy.encode(old_msg)
    assert old_cls.model_validate(legacy.decode(old_cls, wire).model_dump()) == old_msg  # same values
    rows.append(("earlier codec", rate(lambda: legacy.encode(old_msg), seconds),
                 rate(lambda: legacy.decode(old_cls, old_wire), seconds)))
    if json_format is not None and hasattr(messages, "to_proto"):
        proto = messages.to_proto(msg)
        pb_cls = type(proto)
        rows.append(("pb json_format", rate(lambda: json_format.MessageToJson(proto), seconds),
                     rate(lambda: json_format.Parse(wire, pb_cls(), ignore_unknown_fields=True), seconds)))
    pyd_wire = msg.model_dump_json()
    rows.append(("pydantic json", rate(msg.model_dump_json, seconds),
                 rate(lambda: cls.model_validate_json(pyd_wire), seconds)))
    base_enc, base_dec = rows[0][1], rows[0][2]
    print(f"\n{name} ({len(wire)} bytes on the wire)")
    print(f"  {'path':<24}{'encode/s':>12}{'decode/s':>12}{'enc ratio':>11}{'dec ratio':>11}")
    for label, enc, dec in rows:
        print(f"  {label:<24}{enc:>12,.0f}{dec:>12,.0f}{enc / base_enc:>10.2f}x{dec / base_dec:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = parser.parse_args()
    print("ratios: the path's rate / messages.encode|decode's rate (above 1 = faster than ours)")
    measure("HostHeartbeat", heartbeat(), args.seconds)
    measure("WorkloadStartRequest", start_request(), args.seconds)


if __name__ == "__main__":
    main()
