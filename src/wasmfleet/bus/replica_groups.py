"""Which replicas belong together: the identity shared by every Workload of one deployment.

The operator names it in the start request, as an annotation of the Workload message (upstream's
protocol carries annotations, and an upstream host ignores one it does not know, where a new proto
field would fail its decoder). Hosts use it where "the same component of the same workload" must
mean every replica at once: the default wasmcloud:messaging queue group, so N replicas share each
message once instead of each handling every message.

The value is the WorkloadDeployment's name for its replicas (stable across rollouts: old and new
ReplicaSets share the group while both run), a standalone WorkloadReplicaSet's name for its
replicas, and the Workload's own name otherwise. A request without the annotation (an upstream
operator, an older wasmfleet one) groups by the Workload's name, as before.
"""

from __future__ import annotations

from wasmfleet.api import groups
from wasmfleet.bus import messages

ANNOTATION = f"{groups.GROUP}/replica-group"


def of(workload: messages.Workload) -> str:
    """The replica group of a workload as a host received it (its name when none is given)."""
    return workload.annotations.get(ANNOTATION) or workload.name
