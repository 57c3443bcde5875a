"""Multi-tenancy in placement (scheduler.filters.environment, upstream 2.1's rule).

- A host with an environment takes only workloads of that environment; a workload's environment is
  spec.environment, else its namespace (so `--environment <namespace>` hosts serve that namespace).
- A host that allows shared hosting (label runtime.wasmcloud.dev/allow-shared-hosting=true) takes
  workloads of any environment.
- A host without an environment takes workloads that name no spec.environment (a fleet without
  tenancy keeps working), but not a workload that asks for an environment.
- The refusal names the host's and the workload's environments.
"""

from __future__ import annotations

from wasmfleet.scheduler import candidates, filters, placement


def host(name: str, environment: str = "", **labels: str) -> candidates.HostCandidate:
    return candidates.HostCandidate(
        name=name, host_id=f"id-{name}", ready=True, labels=labels, environment=environment,
        shared=filters.allows_shared_hosting(labels),
    )


def placed(req: candidates.Requirements, *hosts: candidates.HostCandidate) -> set[str]:
    """Every host the filters let through (not just the one placement picks)."""
    return {h.name for h in hosts if filters.environment(h, req) is None}


def test_a_dedicated_host_takes_only_its_own_environment() -> None:
    team_a = host("a", environment="team-a")
    assert placed(candidates.Requirements("x/w", environment="team-a"), team_a) == {"a"}
    assert placed(candidates.Requirements("x/w", environment="team-b"), team_a) == set()
    # No spec.environment: the namespace is the environment.
    assert placed(candidates.Requirements("team-a/w", namespace="team-a"), team_a) == {"a"}
    assert placed(candidates.Requirements("default/w", namespace="default"), team_a) == set()


def test_spec_environment_wins_over_the_namespace() -> None:
    req = candidates.Requirements("team-a/w", namespace="team-a", environment="team-b")
    assert placed(req, host("a", environment="team-a"), host("b", environment="team-b")) == {"b"}


def test_a_host_allowing_shared_hosting_takes_every_environment() -> None:
    shared = host("s", environment="team-a", **{filters.SHARED_HOSTING_LABEL: "true"})
    assert shared.shared
    for req in (candidates.Requirements("x/w", environment="team-b"),
                candidates.Requirements("default/w", namespace="default"),
                candidates.Requirements("x/w")):
        assert placed(req, shared) == {"s"}, req


def test_a_host_without_environment_is_the_pool_of_workloads_that_name_none() -> None:
    pool = host("p")
    assert placed(candidates.Requirements("default/w", namespace="default"), pool) == {"p"}
    assert placed(candidates.Requirements("default/w", namespace="default", environment="prod"), pool) == set()
    shared_pool = host("q", **{filters.SHARED_HOSTING_LABEL: "true"})
    assert placed(candidates.Requirements("default/w", environment="prod"), shared_pool) == {"q"}


def test_placement_explains_a_tenancy_refusal() -> None:
    req = candidates.Requirements("team-b/w", namespace="team-b")
    decision = placement.choose(req, [host("a", environment="team-a")])
    assert decision.host is None
    (exclusion,) = decision.exclusions
    assert exclusion.filter == "Environment"
    assert exclusion.reason == "host is dedicated to environment team-a, the workload's is team-b"
