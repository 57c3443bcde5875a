"""The API group wasmfleet serves and the kinds in it (names as upstream wasmCloud v2)."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "runtime.wasmcloud.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool = True


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo("Artifact", "artifacts", "artifact", ("art",)),
        KindInfo("Host", "hosts", "host", ("wh",)),
        KindInfo("Workload", "workloads", "workload", ("ww",)),
        KindInfo("WorkloadReplicaSet", "workloadreplicasets", "workloadreplicaset", ("wrs",)),
        KindInfo("WorkloadDeployment", "workloaddeployments", "workloaddeployment", ("wd",)),
    )
}

# Labels and finalizers shared by the operator, the gateway and the CLI.
LABEL_HOSTGROUP = "hostgroup"
LABEL_WORKLOAD_DEPLOYMENT = f"{GROUP}/workload-deployment"
LABEL_WORKLOAD_REPLICASET = f"{GROUP}/workload-replicaset"
LABEL_TEMPLATE_HASH = f"{GROUP}/template-hash"
FINALIZER_WORKLOAD = f"{GROUP}/workload"
FINALIZER_ARTIFACT = f"{GROUP}/artifact"
