"""The per-component status a host reports (hosted_workloads.component_statuses), from what the
runtime found when it prepared the workload.

Checks: the HTTP entry is running when routed and idle ("no HTTP route") when not; a library
reached from it is linked, one nothing reaches is idle; a second incoming-handler exporter is idle
and names the component serving HTTP; a messaging handler is idle until messages reach it; each
message lists what the component imports from which component.
"""

from __future__ import annotations

from pathlib import Path

from wasmfleet.bus.messages import ComponentRole, ComponentState, ComponentStatus
from wasmfleet.host.hosted_workloads import component_statuses
from wasmfleet.host.runtime.instances import PreparedComponent, PreparedWorkload

HANDLER = "wasi:http/incoming-handler@0.2.12"
TEXT = "wasmfleet:demo/text@0.1.0"


def prepared() -> PreparedWorkload:
    return PreparedWorkload(
        components=[
            PreparedComponent("text", Path("t"), ComponentRole.LIBRARY, exports=[TEXT]),
            PreparedComponent("front", Path("f"), ComponentRole.HTTP, exports=[HANDLER], links={TEXT: "text"},
                              reaches=["text"]),
            PreparedComponent("spare", Path("s"), ComponentRole.LIBRARY, exports=[HANDLER]),
            PreparedComponent("jobs", Path("j"), ComponentRole.MESSAGING_HANDLER,
                              exports=["wasmcloud:messaging/handler@0.2.0"]),
            PreparedComponent("unused", Path("u"), ComponentRole.LIBRARY, exports=["acme:x/y@1.0.0"]),
        ],
        http_entry=1,
    )


def test_roles_and_states_when_http_is_routed() -> None:
    assert component_statuses(prepared(), http_served=True) == [
        ComponentStatus(name="text", role="library", state="linked", message=""),
        ComponentStatus(name="front", role="http", state="running", message=f"imports {TEXT} from text"),
        ComponentStatus(name="spare", role="library", state="idle",
                        message="exports wasi:http/incoming-handler, but front serves the workload's HTTP "
                                "(the first in manifest order)"),
        ComponentStatus(name="jobs", role="messaging-handler", state="idle",
                        message="messages are not delivered to it"),
        ComponentStatus(name="unused", role="library", state="idle",
                        message="no running component imports from it"),
    ]


def test_nothing_runs_without_an_http_route() -> None:
    statuses = component_statuses(prepared(), http_served=False)
    assert [s.state for s in statuses] == [ComponentState.IDLE] * 5
    assert statuses[1].message == f"no HTTP route; imports {TEXT} from text"
