"""The real nats-server helper (wasmfleet.testing.nats) and the typed request helper (wasmfleet.bus.requests).

Checks: the server starts with JetStream on a free port; a killed server starts again on the same
port and a nats-py client reconnects to it; typed requests decode replies, and map no-responders,
timeouts and error-header replies to BusError subclasses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from wasmfleet.bus import messages, requests
from wasmfleet.testing.nats import nats_server, running_nats_server


async def test_jetstream_is_on(tmp_path: Path) -> None:
    with running_nats_server(tmp_path) as url:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().create_key_value(bucket="probe")
            await kv.put("k", b"v")
            assert (await kv.get("k")).value == b"v"
        finally:
            await nc.close()


async def test_killed_server_restarts_on_the_same_port_and_clients_reconnect(tmp_path: Path) -> None:
    with nats_server(tmp_path) as server:
        port = server.port
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        nc = await nats.connect(server.url, reconnect_time_wait=0.1, reconnected_cb=on_reconnect)
        try:
            server.kill()
            assert not server.running
            server.start()
            assert server.port == port
            await asyncio.wait_for(reconnected.wait(), 10)
            await nc.publish("x", b"y")
            await nc.flush()
        finally:
            await nc.close()


async def test_typed_requests_map_failures_to_bus_errors(tmp_path: Path) -> None:
    with running_nats_server(tmp_path) as url:
        nc = await nats.connect(url)
        try:
            async def answer(msg: nats.aio.msg.Msg) -> None:
                if msg.subject == "svc.ok":
                    req = messages.decode(messages.WorkloadStatusRequest, msg.data)
                    status = messages.WorkloadStatus(
                        workload_id=req.workload_id, workload_state=messages.WorkloadState.NOT_FOUND
                    )
                    reply = messages.WorkloadStatusResponse(workload_status=status)
                    await msg.respond(messages.encode(reply))
                elif msg.subject == "svc.err":
                    detail = messages.ErrorDetail(code=404, message="unknown command")
                    body = messages.ErrorReply(error=detail)
                    await nc.publish(msg.reply, messages.encode(body),
                                     headers=requests.error_headers(404, "unknown command"))

            await nc.subscribe("svc.*", cb=answer)
            ok = await requests.request(
                nc, "svc.ok", messages.WorkloadStatusRequest(workload_id="w"),
                messages.WorkloadStatusResponse, timeout_s=2,
            )
            assert ok.workload_status.workload_state is messages.WorkloadState.NOT_FOUND
            assert ok.workload_status.workload_id == "w"

            with pytest.raises(requests.RemoteError, match="unknown command") as err:
                await requests.request(nc, "svc.err", messages.HeartbeatRequest(),
                                       messages.HostHeartbeat, timeout_s=2)
            assert not err.value.retryable
            with pytest.raises(requests.RemoteError, match="unknown command"):
                # an ErrorReply body is never mistaken for an (empty) typed response
                await requests.request(nc, "svc.err", messages.WorkloadStatusRequest(workload_id="w"),
                                       messages.WorkloadStatusResponse, timeout_s=2)
            with pytest.raises(requests.RequestTimeout):
                await requests.request(nc, "svc.silent", messages.HeartbeatRequest(),
                                       messages.HostHeartbeat, timeout_s=0.2)
            with pytest.raises(requests.NoResponders):
                await requests.request(nc, "nobody.home", messages.HeartbeatRequest(),
                                       messages.HostHeartbeat, timeout_s=2)
        finally:
            await nc.close()
