"""An in-process host agent for the plugin tests (config/logging, keyvalue): one place that says how
such a host is configured, instead of a copy of the settings in every test module."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.components.build import cache_dir  # noqa: E402


def plugin_host_settings(tmp_path: Path, nats_url: str, *, workers: int = 1, suffix: str = "") -> HostSettings:
    """A default-group host on `nats_url` with `workers` processes; `suffix` keeps the directories
    of a second host in the same test apart."""
    return HostSettings(
        identity=Identity(labels={"hostgroup": "default"}),
        bus=BusSettings(nats_url=nats_url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=workers),
        lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / f"host{suffix}"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / f"artifacts{suffix}"),
        # Kept between runs: compiling an 18 MB componentize-py guest takes ~20 s.
        runtime_cache_dir=REPO / ".cache" / "runtime-test-components",
        policy=HostPolicy.allowing(cache_dir()),  # the built test guests
    )


@contextlib.asynccontextmanager
async def running_agent(settings: HostSettings) -> AsyncIterator[Agent]:
    host = Agent(settings)
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()
