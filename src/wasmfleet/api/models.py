"""The runtime.wasmcloud.dev/v1alpha1 resource models.

JSON names are upstream wasmCloud v2's, so its manifests parse unchanged; Python attributes are
snake_case. The CRDs in deploy/crds are generated from these classes (see `crds`), so a constraint
added here is enforced both offline (`wasmfleet validate`) and by any API server the CRDs are
installed in. Rules that span several fields exist once, as CEL (`x-kubernetes-validations`): real API
servers, the embedded one and `wasmfleet validate` all evaluate that CEL (see `celrules`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict, JsonValue

from wasmfleet.api.conditions import Condition

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
INTERFACE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields rejected like a structural CRD."""

    # Attribute docstrings become the fields' descriptions, which the CRDs carry for `kubectl explain`.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_attribute_docstrings=True
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(Model):
    # Statuses are written by controllers and read back from servers that may add fields.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ObjectMeta(BaseModel):
    """The metadata fields wasmfleet reads; everything else is kept as is (managedFields, ...)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _name_is_dns_subdomain(self) -> ObjectMeta:
        if self.name is None and not self.generate_name:
            raise ValueError("metadata.name or metadata.generateName is required")
        if self.name is not None and (len(self.name) > 253 or not DNS1123_SUBDOMAIN.match(self.name)):
            raise ValueError(
                f"name {self.name!r} must be a lowercase RFC 1123 subdomain "
                "(a-z, 0-9, '-' and '.', start and end alphanumeric, at most 253 characters)"
            )
        if self.namespace is not None and not DNS1123_LABEL.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} must be a lowercase RFC 1123 label")
        return self


class Resource(Model):
    api_version: Literal["runtime.wasmcloud.dev/v1alpha1"] = "runtime.wasmcloud.dev/v1alpha1"
    """APIVersion of this representation: runtime.wasmcloud.dev/v1alpha1."""
    metadata: ObjectMeta
    """Standard object metadata: name, namespace, labels, annotations, ownerReferences, finalizers."""


# ---------------------------------------------------------------------------- shared pieces


class LocalObjectReference(Model):
    """A reference to an object by name in the same namespace."""

    name: str = Field(min_length=1)
    """Name of the referenced object in the same namespace."""


class EnvironmentSource(Model):
    """Environment variables: literal values, then ConfigMaps, then Secrets; the last one wins."""

    config: dict[str, str] = Field(default_factory=dict)
    """Literal environment variables, name to value; applied first."""
    config_from: list[LocalObjectReference] = Field(default_factory=list)
    """ConfigMaps whose data is added as environment variables, after the literal values."""
    secret_from: list[LocalObjectReference] = Field(default_factory=list)
    """Secrets whose data is added as environment variables, last (a Secret's value wins)."""


class VolumeMount(Model):
    """A volume of spec.volumes mounted into a component or the service."""

    name: str = Field(min_length=1)
    """Name of a volume declared in spec.volumes."""
    mount_path: str = Field(min_length=1)
    """Path at which the guest sees the volume (a WASI preopened directory)."""
    read_only: bool = False
    """Mount the volume read-only. Default false."""


class LocalResources(Model):
    """What a component or service may use on its host: configuration, environment, volumes, network."""

    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=64)
    """Volumes of spec.volumes made visible to this component or service."""
    environment: EnvironmentSource | None = None
    """Environment variables: literal values, then ConfigMaps, then Secrets; the last one wins."""
    config: dict[str, str] = Field(default_factory=dict)
    """Configuration values, name to value, readable through wasi:config."""
    # Bounded (like every list and string a CEL rule walks) to keep a real API server's cost estimate in budget.
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253, json_schema_extra={
        "x-kubernetes-validations": [cel("!self.matches('\\\\s')", "allowedHosts entries must not contain whitespace")],
    })]] = Field(
        default_factory=list,
        max_length=64,
        description='Egress allow-list for outgoing HTTP: empty denies all, ["*"] allows all.',
    )
    allowed_ip_name_lookups: list[str] = Field(default_factory=list)
    """Host names the guest may resolve to IP addresses (wasi:sockets name lookup)."""
    allowed_host_loopback_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)
    """Loopback ports of the host the guest may connect to (1-65535)."""


PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class Component(Model):
    """A wasm component of the workload."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the component, unique within the workload."""
    image: str = Field(min_length=1)
    """OCI reference of the component's wasm image, or artifact://<name> to use an Artifact bound in the
    WorkloadDeployment's spec.artifacts."""
    image_pull_secret: LocalObjectReference | None = None
    """Secret (kubernetes.io/dockerconfigjson) with credentials for the image's registry."""
    image_pull_policy: PullPolicy = "IfNotPresent"
    """When the host pulls the image: Always, IfNotPresent (default) or Never."""
    pool_size: int = Field(default=0, ge=0, description="Warm instances kept; 0: fresh instance per call.")
    max_invocations: int = Field(default=0, ge=0, description="Retire an instance after N calls; 0: no limit.")
    max_concurrency: int = Field(default=0, ge=0, description="Concurrent calls per instance; 0: default 1.")
    local_resources: LocalResources | None = None
    """Configuration, environment, volume mounts and network grants of this component."""


class HostInterface(Model):
    """A host interface (WIT namespace:package with interfaces) the workload may import, with its configuration."""

    namespace: str = Field(min_length=1, max_length=128)
    """WIT namespace of the host interface, e.g. wasi."""
    package: str = Field(min_length=1, max_length=128)
    """WIT package of the host interface, e.g. keyvalue."""
    interfaces: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Interfaces of the package the workload may import, e.g. store, atomics."""
    version: str | None = Field(default=None, max_length=64)
    """WIT package version, e.g. 0.2.0; a host offering a semver-compatible version matches (a pre-release
    such as 0.2.0-draft only itself). Unset: any version."""
    name: str | None = Field(default=None, max_length=64, pattern=INTERFACE_NAME_PATTERN)
    """Name telling entries for the same namespace and package apart; required when there are several."""
    config: dict[str, str] = Field(default_factory=dict)
    """Configuration handed to the host's implementation of the interface, name to value."""
    config_from: list[LocalObjectReference] = Field(default_factory=list)
    """ConfigMaps whose data is added to config."""
    secret_from: list[LocalObjectReference] = Field(default_factory=list)
    """Secrets whose data is added to config (a Secret's value wins)."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.package, self.name or "", self.version or "")


class Service(Model):
    """A long-running wasm service (a wasi:cli command) run next to the components."""

    image: str = Field(min_length=1)
    """OCI reference of the service's wasm image (a long-running wasi:cli command)."""
    image_pull_secret: LocalObjectReference | None = None
    """Secret (kubernetes.io/dockerconfigjson) with credentials for the image's registry."""
    image_pull_policy: PullPolicy = "IfNotPresent"
    """When the host pulls the image: Always, IfNotPresent (default) or Never."""
    max_restarts: int = Field(default=0, ge=0)
    """Restarts after a failure (an error exit or a trap) before the host gives up on the service;
    0 = the host's default (10). A clean exit (code 0) is never restarted."""
    local_resources: LocalResources | None = None
    """Configuration, environment, volume mounts and network grants of the service."""


class HostPathVolume(Model):
    """A directory of the host machine."""

    path: str = Field(min_length=1)
    """Directory on the host machine."""


class Volume(Model):
    """A volume the workload's components and service can mount."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.ephemeral) != has(self.hostPath)",
                    "exactly one of ephemeral or hostPath must be set",
                )
            ]
        },
    )

    name: str = Field(min_length=1, max_length=63)
    """Name of the volume, referenced by volumeMounts."""
    ephemeral: dict[str, Any] | None = None
    """Scratch directory created for the workload on its host and removed with it. Exactly one of ephemeral or
    hostPath."""
    host_path: HostPathVolume | None = None
    """Directory of the host machine. Exactly one of ephemeral or hostPath."""


class ServiceReference(Model):
    """A Kubernetes Service name."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    """Name of the Kubernetes Service (a DNS-1035 label) under which the workload answers HTTP."""


class KubernetesOptions(Model):
    """Kubernetes integration of a workload."""

    service: ServiceReference | None = None
    """Expose the workload's HTTP handler under a Kubernetes Service name (EndpointSlices kept by the gateway)."""


# CEL sees the properties `namespace` and `package` (reserved words) as `__namespace__`/`__package__`:
# Kubernetes escapes them, and a rule that writes `a.namespace` does not compile on a real API server.
_HOST_INTERFACE_RULES: list[JsonValue] = [
    cel(
        "self.all(a, self.exists_one(b, a.__namespace__ == b.__namespace__ && a.__package__ == b.__package__"
        " && (has(a.name) ? a.name : '') == (has(b.name) ? b.name : '')"
        " && (has(a.version) ? a.version : '') == (has(b.version) ? b.version : '')))",
        "hostInterfaces entries must be unique by namespace, package, name and version",
    ),
    cel(
        "self.all(a, !has(a.name) || a.name == '' ? self.exists_one(b, a.__namespace__ == b.__namespace__"
        " && a.__package__ == b.__package__) : true)",
        "when two or more hostInterfaces entries share namespace and package, every one must have a name",
    ),
]

_COMPONENT_RULES: list[JsonValue] = [
    cel("self.all(a, self.exists_one(b, a.name == b.name))", "component names must be unique"),
]


class WorkloadSpec(Model):
    """What to run (components, a service) and where (host selection), with the grants it gets."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.components) && size(self.components) > 0) || has(self.service)",
                    "a workload needs at least one component or a service",
                ),
                cel(
                    "!has(self.components) || self.components.all(c, !has(c.localResources)"
                    " || !has(c.localResources.volumeMounts) || c.localResources.volumeMounts.all(m,"
                    " has(self.volumes) && self.volumes.exists(v, v.name == m.name)))",
                    "every volumeMounts entry must name a volume in spec.volumes",
                ),
                cel(
                    "!has(self.service) || !has(self.service.localResources)"
                    " || !has(self.service.localResources.volumeMounts)"
                    " || self.service.localResources.volumeMounts.all(m,"
                    " has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
                    "every volumeMounts entry must name a volume in spec.volumes",
                ),
            ]
        },
    )

    host_selector: dict[str, str] = Field(default_factory=dict)
    """Labels a host must carry to run this workload (e.g. hostgroup: edge)."""
    host_id: str | None = None
    """Pin the workload to the host with this ID."""
    environment: str | None = None
    """Run only on hosts of this environment (tenant)."""
    # Bounded so the CEL rules below stay within a real API server's cost budget.
    components: list[Component] = Field(
        default_factory=list, max_length=32, json_schema_extra={"x-kubernetes-validations": _COMPONENT_RULES})
    """Wasm components of the workload, linked together on one host (at most 32)."""
    host_interfaces: list[HostInterface] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-validations": _HOST_INTERFACE_RULES},
    )
    """Host interfaces the workload may import (at most 64); nothing else is linked."""
    service: Service | None = None
    """A long-running service run next to the components."""
    volumes: list[Volume] = Field(default_factory=list, max_length=64)
    """Volumes that components and the service can mount (at most 64)."""
    kubernetes: KubernetesOptions | None = None
    """Kubernetes integration: the Service name the workload answers to."""


class WorkloadTemplateMeta(Model):
    """Labels and annotations given to Workloads made from a template."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels given to each Workload made from the template."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations given to each Workload made from the template."""


class WorkloadTemplate(Model):
    """The template of the Workloads a WorkloadReplicaSet makes."""

    metadata: WorkloadTemplateMeta = Field(default_factory=WorkloadTemplateMeta)
    """Labels and annotations of the Workloads made from the template."""
    spec: WorkloadSpec
    """The spec of each Workload made from the template."""


# ---------------------------------------------------------------------------- Artifact


class ArtifactSpec(Model):
    """The image an Artifact stands for."""

    image: str = Field(min_length=1)
    """OCI reference of the wasm image this artifact stands for."""
    image_pull_secret: LocalObjectReference | None = None
    """Secret (kubernetes.io/dockerconfigjson) with credentials for the image's registry."""


class ArtifactStatus(StatusModel):
    """Where the artifact was published, and its conditions."""

    artifact_url: str | None = None
    """Where the fetched artifact can be read (nats://<bucket>/sha256:<hex> for a registry image);
    components written artifact://<name> resolve to it. Kept when a later pull fails."""
    image: str | None = None
    """The spec.image that artifactUrl was published from."""
    digest: str | None = None
    """sha256 digest of the published component (its wasm layer)."""
    manifest_digest: str | None = None
    """Digest of the manifest the image's tag pointed at when it was last pulled."""
    size: int | None = Field(default=None, ge=0)
    """Size of the published component in bytes."""
    last_pull_time: str | None = None
    """When the published component was pulled from its registry (RFC 3339)."""
    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Conditions Sync, Published and Ready."""


class Artifact(Resource):
    """Artifact is a wasm image fetched once and published where hosts read it; components refer to it as
    artifact://<name>."""

    kind: Literal["Artifact"] = "Artifact"
    """Kind of the object: Artifact."""
    spec: ArtifactSpec
    """The image the artifact stands for."""
    status: ArtifactStatus = Field(default_factory=ArtifactStatus)
    """Where the artifact was published, and its conditions."""


# ---------------------------------------------------------------------------- Host


class HostSpecCompat(Model):
    """The seed documents' Host example nests the host fields under `spec`; accept that form too."""

    host_id: str | None = None
    """ID of the host (the form nested under spec, as in the wasmCloud v2 documentation)."""
    hostname: str | None = None
    """Hostname of the machine the host runs on."""
    http_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the host's HTTP server."""
    environment: str | None = None
    """Environment (tenant) the host advertises."""


class HostStatus(StatusModel):
    """What a host last reported in its heartbeat."""

    version: str | None = None
    """Version of the host software."""
    os_name: str | None = None
    """Operating system of the host machine."""
    os_arch: str | None = None
    """CPU architecture of the host machine."""
    os_kernel: str | None = None
    """Kernel version of the host machine."""
    system_cpu_usage: str | None = Field(default=None, alias="systemCPUUsage")
    """CPU usage of the host machine as last reported (a decimal string)."""
    system_memory_total: int | None = None
    """Total memory of the host machine, in bytes."""
    system_memory_free: int | None = None
    """Free memory of the host machine, in bytes."""
    component_count: int | None = None
    """Number of components running on the host."""
    workload_count: int | None = None
    """Number of workloads running on the host."""
    last_seen: str | None = None
    """Time of the host's last heartbeat (RFC 3339)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Conditions Reporting and Ready."""


class Host(Resource):
    """Host is a wasmfleet host: a process that runs workloads. The operator creates and updates it from the host's
    heartbeats."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.hostId) || (has(self.spec) && has(self.spec.hostId))",
                    "hostId is required",
                )
            ]
        },
    )

    kind: Literal["Host"] = "Host"
    """Kind of the object: Host."""
    host_id: str | None = None
    """ID of the host (required here or under spec)."""
    hostname: str | None = None
    """Hostname of the machine the host runs on."""
    http_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the host's HTTP server."""
    environment: str | None = None
    """Environment (tenant) the host advertises; workloads of another environment are not placed on it."""
    spec: HostSpecCompat | None = None
    """The host fields nested under spec, as the wasmCloud v2 documentation writes them; accepted as an alternative."""
    status: HostStatus = Field(default_factory=HostStatus)
    """What the host last reported in its heartbeat, and its conditions."""

    @property
    def effective_host_id(self) -> str | None:
        return self.host_id or (self.spec.host_id if self.spec else None)


# ---------------------------------------------------------------------------- Workload


class ComponentStatus(StatusModel):
    """One component of a running workload, as its host reports it."""

    name: str = ""
    """Name of the component in the workload."""
    role: str = ""
    """What the host does with it: http (serves the workload's HTTP), messaging-handler (handles
    messages), library (called only by the workload's other components) or service."""
    state: str = ""
    """running (the host calls it), linked (instantiated with a component the host calls) or idle
    (nothing calls it)."""
    message: str | None = None
    """What it imports from the other components, or why it is idle."""


class ServiceStatus(StatusModel):
    """The workload's service as its host supervises it."""

    state: str = ""
    """running, restarting (the last run failed; the next starts after a backoff), failed (failed
    again after maxRestarts restarts: not restarted), completed (exited with code 0: not restarted)
    or stopping."""
    restart_count: int = 0
    """Restarts of the service after a failure, since the workload started on its host."""
    max_restarts: int = 0
    """The restart limit in force: the spec's maxRestarts, or the host's default (10) when unset."""
    last_exit_code: int | None = None
    """Exit code of the last run that ended (134 for a trap)."""
    last_error: str | None = None
    """Why the last failed run ended: "exit code N" or "trap: <reason>" (at most 300 characters)."""
    last_exit_time: str | None = None
    """When the last run ended (RFC 3339)."""
    message: str | None = None
    """The host's one-line summary of the service's state."""


class WorkloadStatus(StatusModel):
    """Where a workload runs, and its conditions."""

    host_id: str | None = None
    """ID of the host the workload is placed on."""
    environment: str | None = None
    """Environment of that host."""
    workload_id: str | None = None
    """ID of the workload on its host: the object's uid."""
    conditions: list[Condition] = Field(default_factory=list)
    """Conditions Config, HostSelection, Placement, Sync and Ready."""
    components: list[ComponentStatus] = Field(default_factory=list)
    """Each component with its role and state, as the host last reported them while running."""
    service: ServiceStatus | None = None
    """The service's state, restart count and last exit, as the host last reported them while running."""


class Workload(Resource):
    """Workload is a set of wasm components and an optional service, placed together on one host."""

    kind: Literal["Workload"] = "Workload"
    """Kind of the object: Workload."""
    spec: WorkloadSpec
    """What to run and where."""
    status: WorkloadStatus = Field(default_factory=WorkloadStatus)
    """Where the workload runs, and its conditions."""


# ---------------------------------------------------------------------------- ReplicaSet / Deployment


class ReplicaCounts(StatusModel):
    """Counts of replicas by state."""

    expected: int = 0
    """Replicas asked for."""
    current: int = 0
    """Replicas that exist."""
    ready: int = 0
    """Replicas whose Ready condition is True."""
    unavailable: int = 0
    """Replicas asked for that are not ready (expected minus ready, at least 0)."""


class WorkloadReplicaSetSpec(Model):
    """How many Workloads to keep, and their template."""

    replicas: int = Field(default=1, ge=0)
    """Number of Workloads to keep. Default 1."""
    template: WorkloadTemplate
    """Template of the Workloads this object makes."""


class WorkloadReplicaSetStatus(StatusModel):
    """Replica counts and conditions of a WorkloadReplicaSet."""

    replicas: ReplicaCounts = Field(default_factory=ReplicaCounts)
    """Counts of the replicas."""
    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Conditions ScaleUp, ScaleDown and Ready."""


class WorkloadReplicaSet(Resource):
    """WorkloadReplicaSet keeps a number of identical Workloads made from a template."""

    kind: Literal["WorkloadReplicaSet"] = "WorkloadReplicaSet"
    """Kind of the object: WorkloadReplicaSet."""
    spec: WorkloadReplicaSetSpec
    """How many Workloads to keep, and their template."""
    status: WorkloadReplicaSetStatus = Field(default_factory=WorkloadReplicaSetStatus)
    """Replica counts and conditions."""


class ArtifactFrom(Model):
    """The Artifact that supplies an image."""

    name: str = Field(min_length=1)
    """Name of the Artifact in the same namespace."""


class ArtifactBinding(Model):
    """A name that component images use as artifact://<name>, bound to an Artifact."""

    name: str = Field(min_length=1)
    """Name that component images refer to as artifact://<name>."""
    artifact_from: ArtifactFrom
    """The Artifact that supplies the image."""


class WorkloadDeploymentSpec(WorkloadReplicaSetSpec):
    """Replicas, template, rollout policy and artifact bindings of a WorkloadDeployment."""

    deploy_policy: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    """How a template change rolls out: RollingUpdate (default: the old ReplicaSet stays until the new one is
    Ready) or Recreate."""
    artifacts: list[ArtifactBinding] = Field(default_factory=list)
    """Artifacts that component images can refer to as artifact://<name>."""
    kubernetes: KubernetesOptions | None = None
    """Kubernetes integration: the Service name the deployment's workloads answer to."""


class WorkloadDeploymentStatus(StatusModel):
    """Replica sets, replica counts and conditions of a WorkloadDeployment."""

    current_replica_set: str | None = None
    """Name of the WorkloadReplicaSet made from the current template."""
    previous_replica_set: str | None = None
    """Name of the WorkloadReplicaSet being replaced, during a rollout."""
    replicas: ReplicaCounts = Field(default_factory=ReplicaCounts)
    """Counts of the replicas of the current WorkloadReplicaSet."""
    current_replicas: int = 0
    """Replicas that exist (the /scale subresource's status.replicas)."""
    selector: str | None = None
    """Label selector of the deployment's Workloads as a string (the /scale subresource's status.selector, for a
    HorizontalPodAutoscaler)."""
    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Conditions of the deployment, Ready among them."""


class WorkloadDeployment(Resource):
    """WorkloadDeployment rolls out Workloads through WorkloadReplicaSets; its /scale subresource lets a
    HorizontalPodAutoscaler drive it."""

    kind: Literal["WorkloadDeployment"] = "WorkloadDeployment"
    """Kind of the object: WorkloadDeployment."""
    spec: WorkloadDeploymentSpec
    """Replicas, template, rollout policy and artifact bindings."""
    status: WorkloadDeploymentStatus = Field(default_factory=WorkloadDeploymentStatus)
    """Replica sets, replica counts and conditions."""


MODELS: dict[str, type[Resource]] = {
    m.model_fields["kind"].default: m
    for m in (Artifact, Host, Workload, WorkloadReplicaSet, WorkloadDeployment)
}
