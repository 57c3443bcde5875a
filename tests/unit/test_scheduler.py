"""Scheduler (pure placement) checks.

- Only Ready hosts are chosen; a pinned hostId restricts the choice.
- hostSelector matchLabels / matchExpressions and environment filter hosts.
- Hosts that do not advertise a requested interface (with compatible version) are refused.
- Full hosts (capacity) are refused.
- Replicas of one group spread across hosts before any host gets a second one.
- Among equals the least loaded host wins; ties break deterministically but not always the same way.
- A failed decision explains which filter excluded which hosts.
- still_fits re-checks a placed workload's host, ignoring capacity.
- rebalance_move asks to move one replica only when a group is piled up (two more on one host than
  on an eligible one), from the most crowded host to the emptiest eligible one, and never to a host a
  filter refuses.
"""

from __future__ import annotations

from collections import Counter

from wasmfleet.scheduler import candidates, filters, placement

HTTP = candidates.Interface("wasi", "http", "incoming-handler", "0.2.0")
KV = candidates.Interface("wasi", "keyvalue", "store", "0.2.0-draft")


def host(name: str, **kw: object) -> candidates.HostCandidate:
    base: dict[str, object] = {"host_id": f"id-{name}", "ready": True, "interfaces": frozenset({HTTP})}
    base.update(kw)
    return candidates.HostCandidate(name=name, **base)  # type: ignore[arg-type]


def test_only_ready_hosts_are_chosen() -> None:
    d = placement.choose(candidates.Requirements("ns/w"), [host("a", ready=False), host("b")])
    assert d.host is not None and d.host.name == "b"
    assert d.exclusions == (placement.Exclusion("a", "Ready", "host is not Ready"),)


def test_pinned_host_id_restricts_choice() -> None:
    req = candidates.Requirements("ns/w", host_id="id-b")
    d = placement.choose(req, [host("a"), host("b"), host("c")])
    assert d.host is not None and d.host.name == "b"


def test_host_selector_match_labels_and_expressions() -> None:
    sel = candidates.LabelSelector(
        match_labels={"hostgroup": "edge"},
        match_expressions=(candidates.SelectorRequirement("zone", "In", ("z1", "z2")),),
    )
    hosts = [
        host("a", labels={"hostgroup": "default", "zone": "z1"}),
        host("b", labels={"hostgroup": "edge", "zone": "z3"}),
        host("c", labels={"hostgroup": "edge", "zone": "z2"}),
    ]
    d = placement.choose(candidates.Requirements("ns/w", host_selector=sel), hosts)
    assert d.host is not None and d.host.name == "c"
    assert {e.host for e in d.exclusions} == {"a", "b"}


def test_selector_operators() -> None:
    def ok(op: str, labels: dict[str, str], values: tuple[str, ...] = ()) -> bool:
        sel = candidates.LabelSelector(match_expressions=(candidates.SelectorRequirement("k", op, values),))
        return filters.selector_matches(sel, labels) is None

    assert ok("Exists", {"k": "1"}) and not ok("Exists", {})
    assert ok("DoesNotExist", {}) and not ok("DoesNotExist", {"k": "1"})
    assert ok("NotIn", {"k": "x"}, ("y",)) and not ok("NotIn", {"k": "y"}, ("y",))
    assert ok("NotIn", {}, ("y",))


def test_environment_filter() -> None:
    req = candidates.Requirements("ns/w", environment="prod")
    d = placement.choose(req, [host("a", environment="dev"), host("b", environment="prod")])
    assert d.host is not None and d.host.name == "b"


def test_host_lacking_interface_is_refused_and_explained() -> None:
    req = candidates.Requirements("ns/w", interfaces=frozenset({HTTP, KV}))
    d = placement.choose(req, [host("a"), host("b")])
    assert d.host is None
    msg = d.explain()
    assert "Interfaces excluded a, b" in msg
    assert "wasi:keyvalue/store@0.2.0-draft" in msg
    d2 = placement.choose(req, [host("a"), host("b", interfaces=frozenset({HTTP, KV}))])
    assert d2.host is not None and d2.host.name == "b"


def test_interface_versions_follow_semver_compatibility() -> None:
    assert filters.versions_compatible("0.2.0", "0.2.3")
    assert not filters.versions_compatible("0.2.0", "0.3.0")
    assert filters.versions_compatible("1.0.0", "1.4.0")
    assert not filters.versions_compatible("0.2.0-draft", "0.2.0")
    assert filters.versions_compatible(None, "0.2.0")


def test_full_host_is_refused() -> None:
    d = placement.choose(candidates.Requirements("ns/w"), [host("a", load=3, capacity=3), host("b", load=9)])
    assert d.host is not None and d.host.name == "b"


def test_replicas_spread_before_doubling_up() -> None:
    hosts = [host("a", load=0), host("b", load=5), host("c", load=5)]
    counts = {"a": 1}
    d = placement.choose(candidates.Requirements("ns/w-2", group="ns/rs"), hosts, counts)
    assert d.host is not None and d.host.name in {"b", "c"}


def test_least_loaded_wins() -> None:
    hosts = [host("a", load=4), host("b", load=1), host("c", load=2)]
    d = placement.choose(candidates.Requirements("ns/w"), hosts)
    assert d.host is not None and d.host.name == "b"


def test_tie_break_is_deterministic_and_varied() -> None:
    hosts = [host(n) for n in "abcde"]
    first = placement.choose(candidates.Requirements("ns/w1"), hosts)
    again = placement.choose(candidates.Requirements("ns/w1"), list(reversed(hosts)))
    assert first.host == again.host
    chosen = (placement.choose(candidates.Requirements(f"ns/w{i}"), hosts).host for i in range(100))
    picks = Counter(h.name for h in chosen if h is not None)
    assert len(picks) == 5


def test_explain_lists_each_filter() -> None:
    req = candidates.Requirements("ns/w", environment="prod")
    d = placement.choose(req, [host("a", ready=False), host("b", environment="dev")])
    assert d.host is None
    msg = d.explain()
    assert msg.startswith("no suitable host found")
    assert "Ready excluded a" in msg and "Environment excluded b" in msg
    assert placement.choose(req, []).explain() == "no suitable host found: no hosts are registered"


def test_still_fits_ignores_capacity_but_not_selectors() -> None:
    full = host("a", load=3, capacity=3, labels={"hostgroup": "edge"})
    assert placement.still_fits(candidates.Requirements("ns/w"), full) is None
    sel = candidates.LabelSelector(match_labels={"hostgroup": "core"})
    ex = placement.still_fits(candidates.Requirements("ns/w", host_selector=sel), full)
    assert ex is not None and ex.filter == "HostSelector"



def test_rebalance_moves_one_replica_from_the_pile_to_the_emptiest_eligible_host() -> None:
    req = candidates.Requirements("ns/w", group="rs")
    hosts = [host("a"), host("b"), host("c")]
    move = placement.rebalance_move(req, hosts, {"a": 3})
    assert move is not None and move.source == "a" and move.target in ("b", "c")
    # Within one replica of each other: nothing to do.
    assert placement.rebalance_move(req, hosts[:2], {"a": 2, "b": 1}) is None
    assert placement.rebalance_move(req, hosts, {"a": 2, "b": 1}) == placement.Move("a", "c")
    assert placement.rebalance_move(req, hosts, {"a": 1, "b": 1, "c": 1}) is None
    # After moves one at a time the pile levels out.
    counts = Counter({"a": 4})
    while (m := placement.rebalance_move(req, hosts, counts)) is not None:
        counts[m.source] -= 1
        counts[m.target] += 1
    assert sorted(counts.values()) == [1, 1, 2]


def test_rebalance_never_targets_a_refused_host() -> None:
    req = candidates.Requirements("ns/w", group="rs",
                                  host_selector=candidates.LabelSelector(match_labels={"zone": "x"}))
    hosts = [host("a", labels={"zone": "x"}), host("b", labels={"zone": "y"}), host("c", ready=False,
                                                                                     labels={"zone": "x"})]
    assert placement.rebalance_move(req, hosts, {"a": 3}) is None
    hosts.append(host("d", labels={"zone": "x"}))
    assert placement.rebalance_move(req, hosts, {"a": 3}) == placement.Move("a", "d")
