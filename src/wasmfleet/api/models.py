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

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

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
    metadata: ObjectMeta


# ---------------------------------------------------------------------------- shared pieces


class LocalObjectReference(Model):
    name: str = Field(min_length=1)


class EnvironmentSource(Model):
    """Environment variables: literal values, then ConfigMaps, then Secrets; the last one wins."""

    config: dict[str, str] = Field(default_factory=dict)
    config_from: list[LocalObjectReference] = Field(default_factory=list)
    secret_from: list[LocalObjectReference] = Field(default_factory=list)


class VolumeMount(Model):
    name: str = Field(min_length=1)
    mount_path: str = Field(min_length=1)
    read_only: bool = False


class LocalResources(Model):
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=64)
    environment: EnvironmentSource | None = None
    config: dict[str, str] = Field(default_factory=dict)
    # Bounded (like every list and string a CEL rule walks) to keep a real API server's cost estimate in budget.
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253, json_schema_extra={
        "x-kubernetes-validations": [cel("!self.matches('\\\\s')", "allowedHosts entries must not contain whitespace")],
    })]] = Field(
        default_factory=list,
        max_length=64,
        description='Egress allow-list for outgoing HTTP: empty denies all, ["*"] allows all.',
    )
    allowed_ip_name_lookups: list[str] = Field(default_factory=list)
    allowed_host_loopback_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)


PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class Component(Model):
    name: str = Field(min_length=1, max_length=253)
    image: str = Field(min_length=1)
    image_pull_secret: LocalObjectReference | None = None
    image_pull_policy: PullPolicy = "IfNotPresent"
    pool_size: int = Field(default=0, ge=0, description="Warm instances kept; 0: fresh instance per call.")
    max_invocations: int = Field(default=0, ge=0, description="Retire an instance after N calls; 0: no limit.")
    max_concurrency: int = Field(default=0, ge=0, description="Concurrent calls per instance; 0: default 1.")
    local_resources: LocalResources | None = None


class HostInterface(Model):
    namespace: str = Field(min_length=1, max_length=128)
    package: str = Field(min_length=1, max_length=128)
    interfaces: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    version: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64, pattern=INTERFACE_NAME_PATTERN)
    config: dict[str, str] = Field(default_factory=dict)
    config_from: list[LocalObjectReference] = Field(default_factory=list)
    secret_from: list[LocalObjectReference] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.package, self.name or "", self.version or "")


class Service(Model):
    image: str = Field(min_length=1)
    image_pull_secret: LocalObjectReference | None = None
    image_pull_policy: PullPolicy = "IfNotPresent"
    max_restarts: int = Field(default=0, ge=0)
    local_resources: LocalResources | None = None


class HostPathVolume(Model):
    path: str = Field(min_length=1)


class Volume(Model):
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
    ephemeral: dict[str, Any] | None = None
    host_path: HostPathVolume | None = None


class ServiceReference(Model):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class KubernetesOptions(Model):
    service: ServiceReference | None = None


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
    host_id: str | None = None
    environment: str | None = None
    # Bounded so the CEL rules below stay within a real API server's cost budget.
    components: list[Component] = Field(
        default_factory=list, max_length=32, json_schema_extra={"x-kubernetes-validations": _COMPONENT_RULES})
    host_interfaces: list[HostInterface] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-validations": _HOST_INTERFACE_RULES},
    )
    service: Service | None = None
    volumes: list[Volume] = Field(default_factory=list, max_length=64)
    kubernetes: KubernetesOptions | None = None


class WorkloadTemplateMeta(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WorkloadTemplate(Model):
    metadata: WorkloadTemplateMeta = Field(default_factory=WorkloadTemplateMeta)
    spec: WorkloadSpec


# ---------------------------------------------------------------------------- Artifact


class ArtifactSpec(Model):
    image: str = Field(min_length=1)
    image_pull_secret: LocalObjectReference | None = None


class ArtifactStatus(StatusModel):
    artifact_url: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Artifact(Resource):
    kind: Literal["Artifact"] = "Artifact"
    spec: ArtifactSpec
    status: ArtifactStatus = Field(default_factory=ArtifactStatus)


# ---------------------------------------------------------------------------- Host


class HostSpecCompat(Model):
    """The seed documents' Host example nests the host fields under `spec`; accept that form too."""

    host_id: str | None = None
    hostname: str | None = None
    http_port: int | None = Field(default=None, ge=0, le=65535)
    environment: str | None = None


class HostStatus(StatusModel):
    version: str | None = None
    os_name: str | None = None
    os_arch: str | None = None
    os_kernel: str | None = None
    system_cpu_usage: str | None = Field(default=None, alias="systemCPUUsage")
    system_memory_total: int | None = None
    system_memory_free: int | None = None
    component_count: int | None = None
    workload_count: int | None = None
    last_seen: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Host(Resource):
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
    host_id: str | None = None
    hostname: str | None = None
    http_port: int | None = Field(default=None, ge=0, le=65535)
    environment: str | None = None
    spec: HostSpecCompat | None = None
    status: HostStatus = Field(default_factory=HostStatus)

    @property
    def effective_host_id(self) -> str | None:
        return self.host_id or (self.spec.host_id if self.spec else None)


# ---------------------------------------------------------------------------- Workload


class WorkloadStatus(StatusModel):
    host_id: str | None = None
    environment: str | None = None
    workload_id: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Workload(Resource):
    kind: Literal["Workload"] = "Workload"
    spec: WorkloadSpec
    status: WorkloadStatus = Field(default_factory=WorkloadStatus)


# ---------------------------------------------------------------------------- ReplicaSet / Deployment


class ReplicaCounts(StatusModel):
    expected: int = 0
    current: int = 0
    ready: int = 0
    unavailable: int = 0


class WorkloadReplicaSetSpec(Model):
    replicas: int = Field(default=1, ge=0)
    template: WorkloadTemplate


class WorkloadReplicaSetStatus(StatusModel):
    replicas: ReplicaCounts = Field(default_factory=ReplicaCounts)
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class WorkloadReplicaSet(Resource):
    kind: Literal["WorkloadReplicaSet"] = "WorkloadReplicaSet"
    spec: WorkloadReplicaSetSpec
    status: WorkloadReplicaSetStatus = Field(default_factory=WorkloadReplicaSetStatus)


class ArtifactFrom(Model):
    name: str = Field(min_length=1)


class ArtifactBinding(Model):
    name: str = Field(min_length=1)
    artifact_from: ArtifactFrom


class WorkloadDeploymentSpec(WorkloadReplicaSetSpec):
    deploy_policy: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    artifacts: list[ArtifactBinding] = Field(default_factory=list)
    kubernetes: KubernetesOptions | None = None


class WorkloadDeploymentStatus(StatusModel):
    current_replica_set: str | None = None
    previous_replica_set: str | None = None
    replicas: ReplicaCounts = Field(default_factory=ReplicaCounts)
    current_replicas: int = 0
    selector: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class WorkloadDeployment(Resource):
    kind: Literal["WorkloadDeployment"] = "WorkloadDeployment"
    spec: WorkloadDeploymentSpec
    status: WorkloadDeploymentStatus = Field(default_factory=WorkloadDeploymentStatus)


MODELS: dict[str, type[Resource]] = {
    m.model_fields["kind"].default: m
    for m in (Artifact, Host, Workload, WorkloadReplicaSet, WorkloadDeployment)
}
