"""`bus.subscribing.in_effect`: once it returns, the server has the subscription, on a real nats-server.

The case it exists for: a client connects, subscribes and flushes, and another client asks at once
(a host just started, and its operator). With nats-py's flush() alone, about 5 in 100 such first
requests met "no responders" here: flush's PING overtook the SUB queued for nats-py's flusher task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import pytest

from wasmfleet.bus import subscribing
from wasmfleet.testing.nats import nats_server

pytestmark = pytest.mark.timeout(60)


async def test_a_fresh_subscription_answers_the_first_request(tmp_path: Path) -> None:
    with nats_server(tmp_path) as bus:
        asker = await nats.connect(bus.url)
        try:
            for i in range(100):
                responder = await nats.connect(bus.url)
                try:
                    async def answer(msg: Any) -> None:
                        await msg.respond(b"here")

                    await responder.subscribe(f"fresh.{i}", cb=answer)
                    await subscribing.in_effect(responder)
                    reply = await asker.request(f"fresh.{i}", b"?", timeout=5)  # no responders would raise
                    assert reply.data == b"here"
                finally:
                    await responder.close()
        finally:
            await asker.close()
