"""The messaging keys of a component (plugins/messaging_config) and how bounds split over workers.

Checks: subjects and queue names are validated as NATS has them (empty tokens, whitespace, partial
wildcards, '>' not last), durations accept seconds/s/ms and are capped at 600 s, localResources.config
wins over the hostInterfaces entries, the default queue group is namespace.replica-group.component
(characters a queue name may not hold replaced),
"broadcast" is a plain subscription, errors name the key and its source, and `split_bound` never
hands out more slots than the bound.
"""

from __future__ import annotations

import pytest

from wasmfleet.host.plugins import messaging_config as mc
from wasmfleet.host.runtime.messaging_dispatch import split_bound


@pytest.mark.parametrize(("subject", "ok"), [
    ("a", True), ("a.b.c", True), ("a.*.c", True), ("a.>", True), (">", True),
    ("", False), ("a..b", False), (".a", False), ("a.", False), ("a b", False), ("a\tb", False),
    ("a.b*", False), ("a.>.b", False), ("a.b>", False), ("*a", False),
])
def test_subjects(subject: str, ok: bool) -> None:
    assert (mc.subject_problem(subject) is None) is ok


def test_publish_refuses_wildcards() -> None:
    assert mc.publish_subject_problem("a.*") is not None
    assert mc.publish_subject_problem("a.>") is not None
    assert mc.publish_subject_problem("_INBOX.abc") is None


def test_resolve_reads_local_config_first_and_defaults() -> None:
    plan = mc.resolve({"subscriptions": "x.y"}, [{"subscriptions": "ignored", "max_in_flight": "4"}],
                      namespace="ns", workload="wl", component="c")
    assert plan == mc.Subscriptions(subjects=("x.y",), queue="ns.wl.c", max_in_flight=4, admission_wait_s=30.0)
    broadcast = mc.resolve({}, [{"subscriptions": "a,b, a", "consumer_group": "broadcast", "admission_wait": "500ms"}],
                           namespace="ns", workload="wl", component="c")
    assert broadcast is not None
    assert (broadcast.subjects, broadcast.queue, broadcast.admission_wait_s) == (("a", "b"), None, 0.5)
    assert mc.resolve({}, [{}], namespace="ns", workload="wl", component="c") is None


def test_default_queue_is_a_valid_queue_name() -> None:
    queue = mc.default_queue("ns", "odd name*>", "c")
    assert queue == "ns.odd_name__.c" and mc.queue_problem(queue) is None


@pytest.mark.parametrize(("local", "entry", "message"), [
    ({"consumer_group": "a b"}, {"subscriptions": "s"},
     "component c localResources.config.consumer_group: 'a b' is not a valid queue group name"),
    ({}, {"subscriptions": "s", "admission_wait": "10m"},
     "hostInterfaces entry wasmcloud:messaging config.admission_wait: '10m' is not a duration"),
    ({}, {"subscriptions": "s", "admission_wait": "601s"}, "admission_wait: '601s' is more than 600 s"),
    ({"max_in_flight": "0"}, {"subscriptions": "s"}, "max_in_flight: '0' is not a whole number from 1 to 1024"),
    ({"subscriptions": " , "}, {}, "subscriptions: no subject given"),
])
def test_bad_values_name_the_key_and_source(local: dict[str, str], entry: dict[str, str], message: str) -> None:
    with pytest.raises(mc.MessagingConfigError) as caught:
        mc.resolve(local, [entry], namespace="ns", workload="wl", component="c")
    assert message in str(caught.value)


@pytest.mark.parametrize(("bound", "workers"), [(32, 1), (32, 2), (1, 2), (5, 3), (128, 4), (3, 8)])
def test_split_bound_adds_up(bound: int, workers: int) -> None:
    shares = split_bound(bound, workers)
    assert len(shares) == workers and sum(shares) == bound and max(shares) - min(shares) <= 1
