"""An in-process host agent for the plugin tests (config/logging, keyvalue): one place that says how
such a host is configured, instead of a copy of the settings in every test module."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import free_port

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


WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@contextlib.contextmanager
def host_process(tmp_path: Path, nats_url: str, host_id: str, env: Mapping[str, str]) -> Iterator[int]:
    """A `wasmfleet host` subprocess allowed the built test guests; yields its HTTP port. Its log is
    tmp_path/host.log; a host that ignores SIGTERM for 20 s is killed."""
    port = free_port()
    with open(tmp_path / "host.log", "w") as log:  # the child has its own copy; ours closes on exit
        proc = subprocess.Popen(
            [WASMFLEET, "host", "--nats", nats_url, "--host-id", host_id, "--http-addr", f"127.0.0.1:{port}",
             "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "artifacts"),
             "--heartbeat-interval", "1", "--allow-file-root", str(cache_dir())],
            stdout=subprocess.DEVNULL, stderr=log,
            env={**env, "XDG_CACHE_HOME": str(REPO / ".cache" / "plugin-test-xdg")},
        )
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
