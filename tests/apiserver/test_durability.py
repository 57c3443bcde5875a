"""kill -9 during a stream of concurrent writes: after a restart every acknowledged write is there,
resourceVersions keep increasing, and a watcher resuming from before the crash gets 410 (then relists)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from apiserver_support import endpoint

from wasmfleet.testing.apiserver import ApiServerProcess


async def test_acknowledged_writes_survive_kill_9(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = ApiServerProcess(tmp_path / "api")
    server.start()
    url, headers, ctx = endpoint(server.kubeconfig)
    acked: dict[str, int] = {}
    stop = asyncio.Event()

    async def writer(session: aiohttp.ClientSession, wid: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"w{wid}-{i}"
            i += 1
            try:
                async with session.post(f"{url}/api/v1/namespaces/default/configmaps", ssl=ctx,
                                        json={"metadata": {"name": name}, "data": {"i": str(i)}}) as resp:
                    if resp.status == 201:
                        acked[name] = int((await resp.json())["metadata"]["resourceVersion"])
            except (TimeoutError, aiohttp.ClientError):
                return  # the server died under us: this write was never acknowledged

    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            writers = [asyncio.create_task(writer(session, w)) for w in range(8)]
            while len(acked) < 300:
                await asyncio.sleep(0.02)
            server.kill()  # kill -9 in the middle of the stream
            stop.set()
            await asyncio.gather(*writers)
        assert len(acked) >= 300
        server.start()
        url, headers, ctx = endpoint(server.kubeconfig)
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(f"{url}/api/v1/namespaces/default/configmaps", ssl=ctx) as resp:
                listed = await resp.json()
            stored = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"]) for i in listed["items"]}
            missing = set(acked) - set(stored)
            assert not missing, f"{len(missing)} acknowledged writes lost"
            assert all(stored[n] == rv for n, rv in acked.items())
            async with session.post(f"{url}/api/v1/namespaces/default/configmaps", ssl=ctx,
                                    json={"metadata": {"name": "after-restart"}}) as resp:
                after = int((await resp.json())["metadata"]["resourceVersion"])
            assert after > max(acked.values()) and after > int(listed["metadata"]["resourceVersion"]) - 1
            old_rv = min(acked.values())
            async with session.get(f"{url}/api/v1/namespaces/default/configmaps", ssl=ctx,
                                   params={"watch": "true", "resourceVersion": str(old_rv)}) as resp:
                first = json.loads(await resp.content.readline())
            assert first["type"] == "ERROR" and first["object"]["code"] == 410
    finally:
        server.stop()
