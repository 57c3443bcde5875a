"""NATS subjects of the operator <-> host protocol (wasmfleet.bus.subjects).

Checks: every subject matches upstream's spelling; wildcards cover what they should; host IDs that
would split or match a subject are refused with a clear error; subjects parse back to host/command.
"""

from __future__ import annotations

import pytest

from wasmfleet.bus import subjects


def test_subjects_match_upstream() -> None:
    assert subjects.operator_heartbeat("H1") == "runtime.operator.heartbeat.H1"
    assert subjects.host_heartbeat("H1") == "runtime.host.H1.heartbeat"
    assert subjects.workload_start("H1") == "runtime.host.H1.workload.start"
    assert subjects.workload_status("H1") == "runtime.host.H1.workload.status"
    assert subjects.workload_stop("H1") == "runtime.host.H1.workload.stop"


def test_wildcards() -> None:
    assert subjects.operator_heartbeats() == "runtime.operator.heartbeat.*"
    assert subjects.operator_leavings() == "runtime.operator.leaving.*"
    assert subjects.host_commands("H1") == "runtime.host.H1.>"


@pytest.mark.parametrize("bad", ["a.b", "a b", "*", ">", ""])
def test_host_ids_that_break_subjects_are_refused(bad: str) -> None:
    with pytest.raises(subjects.InvalidHostId, match="subject token"):
        subjects.operator_heartbeat(bad)


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown host command"):
        subjects.host_command("H1", "workload.explode")


def test_subjects_parse_back() -> None:
    assert subjects.host_id_from_operator_subject("runtime.operator.heartbeat.H1") == "H1"
    assert subjects.host_id_from_operator_subject("runtime.operator.leaving.H1") == "H1"
    assert subjects.host_id_from_operator_subject("runtime.host.H1.heartbeat") is None
    assert subjects.command_from_host_subject("runtime.host.H1.workload.start", "H1") == "workload.start"
    assert subjects.command_from_host_subject("runtime.host.H2.workload.start", "H1") == ""
