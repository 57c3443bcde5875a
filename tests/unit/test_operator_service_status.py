"""How the Workload controller reads a host's report of a service (operator/workloads.py): the
report becomes status.service (RFC 3339 lastExitTime, empty strings left out); Ready is False with
ServiceRestarting or ServiceFailed and a message naming the last error while the service is down,
and unaffected while it runs or after it completed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from wasmfleet.bus import messages
from wasmfleet.operator import workloads


def reported(state: str, **kw: object) -> messages.ServiceStatus:
    return messages.ServiceStatus.model_validate({"state": state, "maxRestarts": 3, **kw})


def test_the_report_becomes_status_service() -> None:
    ended = datetime(2026, 12, 7, 5, 0, 1, 500000, tzinfo=timezone(timedelta(hours=2)))
    status = workloads.service_status(reported("restarting", restartCount=1, lastExitCode=1, lastError="exit code 1",
                                               lastExitTime=ended, message="m"))
    assert status is not None
    assert status.model_dump(by_alias=True, exclude_none=True) == {
        "state": "restarting", "restartCount": 1, "maxRestarts": 3, "lastExitCode": 1,
        "lastError": "exit code 1", "lastExitTime": "2026-12-07T03:00:01Z", "message": "m"}
    fresh = workloads.service_status(reported("running"))
    assert fresh is not None and fresh.model_dump(by_alias=True, exclude_none=True) == {
        "state": "running", "restartCount": 0, "maxRestarts": 3}
    assert workloads.service_status(None) is None


def test_ready_follows_the_service() -> None:
    def down(state: str, **kw: object) -> tuple[str, str] | None:
        return workloads.service_down(workloads.service_status(reported(state, **kw)))

    assert down("restarting", restartCount=1, lastExitCode=134, lastError="trap: unreachable") == (
        "ServiceRestarting", "service is down: trap: unreachable; restart 2 of 3 pending (backoff)")
    assert down("failed", restartCount=3, lastExitCode=1, lastError="exit code 1") == (
        "ServiceFailed", "service failed: exit code 1; not restarted: maxRestarts (3) reached after 3 restarts")
    assert down("running", restartCount=2, lastError="exit code 1") is None
    assert down("completed", lastExitCode=0) is None
    assert workloads.service_down(None) is None
    assert workloads.service_note(workloads.service_status(reported("completed"))) == \
        "; its service completed (exit code 0)"
    assert workloads.service_note(workloads.service_status(reported("running"))) == ""
