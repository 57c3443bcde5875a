"""The HTTP routing contract shared by the gateway, the host and the operator.

One place says which Host header names reach a workload, so the gateway (which picks a host) and the
host (which picks a component) can never disagree on a name:

- **Normalisation** (`normalize_hostname`): lower case, surrounding space, port and trailing dots
  removed; an IPv6 literal is bracketed and written in its compressed form (``[::1]``), with or
  without brackets on input; ``*`` (the host's catch-all route) stays ``*``.
- **A workload's route names** (`route_names`): for each wasi:http entry exporting
  ``incoming-handler``, the comma-separated names in its config ``host`` then those in
  ``host-aliases`` (upstream's key for extra names); then, when ``kubernetes.service.name`` is set,
  `service_aliases`: ``<svc>.<ns>``, ``<svc>.<ns>.svc`` (what upstream adds) and
  ``<svc>.<ns>.svc.cluster.local`` (the Service's full DNS name under Kubernetes' default cluster
  domain, which in-cluster clients and most Helm values use). The bare ``<svc>`` is not a name: it
  only resolves inside the Service's own namespace, and on a gateway shared by namespaces it would
  be ambiguous.
- **Service aliases travel to the host in ``host-aliases``** (`with_service_aliases`, called by the
  operator when it builds a start request; upstream's operator does the same). The host therefore
  accepts every route name itself, and the gateway forwards the client's Host header unchanged: the
  guest sees, as its request's authority, the name the client used, whether the request came through
  the gateway or straight from a Kubernetes Service's EndpointSlice.
- **`NO_ROUTE_HEADER`** marks an answer the host made by itself before any component ran (no route
  for that name, or the host is draining): the gateway may retry such a request on another replica.

Pure functions on plain mappings and bus messages; no I/O. Bus messages are named for typing only:
the host's serving processes import this module for `normalize_hostname` and `NO_ROUTE_HEADER` and
need not load the message models.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wasmfleet.bus import messages

NO_ROUTE_HEADER = "X-Wasmfleet-No-Route"
"""Response header (value ``1``) on a host's own refusal: 404 no route, 503 draining."""

HOST_KEY = "host"
"""Config key of the wasi:http entry holding the workload's hostname (a comma list is accepted)."""

ALIASES_KEY = "host-aliases"
"""Config key of the wasi:http entry holding more names, comma-separated (upstream's key)."""

CATCH_ALL = "*"
"""A route name matching every Host no other route claims (host side only; used by tests and dev)."""

CLUSTER_DOMAIN = "cluster.local"
"""Kubernetes' default cluster domain; a cluster with another one names that FQDN in host-aliases."""


def normalize_hostname(value: str) -> str:
    """The form names are compared in: see the module docstring. Never raises; a malformed value
    normalises to something no well-formed name equals."""
    name = value.strip().lower()
    if name.startswith("["):
        end = name.find("]")
        if end == -1:
            return name
        return _bracketed(name[1:end]) or name[: end + 1]
    if name.count(":") > 1:  # an IPv6 literal without brackets (config values; never a valid Host)
        return _bracketed(name) or name
    name = name.partition(":")[0]
    return name.rstrip(".") or name


def _bracketed(literal: str) -> str | None:
    try:
        return f"[{ipaddress.IPv6Address(literal).compressed}]"
    except ValueError:
        return None


def names_in(value: object) -> list[str]:
    """The normalised names of a comma-separated config value, in order; non-strings give none."""
    if not isinstance(value, str):
        return []
    return [n for n in (normalize_hostname(part) for part in value.split(",")) if n]


def is_http_handler(namespace: str, package: str, interfaces: Iterable[str]) -> bool:
    """Whether a hostInterfaces entry is the one that routes HTTP to the workload."""
    return namespace == "wasi" and package == "http" and "incoming-handler" in interfaces


def service_aliases(service: str, namespace: str) -> tuple[str, ...]:
    """The names a Kubernetes Service gives the workload that sets ``kubernetes.service.name``."""
    svc, ns = service.strip().lower(), (namespace.strip().lower() or "default")
    return (f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.{CLUSTER_DOMAIN}")


def route_names(
    handler_configs: Iterable[Mapping[str, object]], *, namespace: str = "", service: str | None = None
) -> tuple[str, ...]:
    """Every Host name a workload answers to, normalised, in order, without duplicates.

    ``handler_configs``: the config maps of its wasi:http incoming-handler entries (see
    `is_http_handler`); ``service``: its ``kubernetes.service.name``, if any."""
    names: list[str] = []
    for config in handler_configs:
        names += names_in(config.get(HOST_KEY))
        names += names_in(config.get(ALIASES_KEY))
    if service:
        names += service_aliases(service, namespace)
    return tuple(dict.fromkeys(names))


def message_route_names(workload: messages.Workload) -> tuple[str, ...]:
    """`route_names` of a start request's workload (service aliases arrive in ``host-aliases``)."""
    return route_names(
        (e.config for e in workload.wit_world.host_interfaces
         if is_http_handler(e.namespace, e.package, e.interfaces)),
        namespace=workload.namespace,
    )


def with_service_aliases(
    interfaces: Sequence[messages.WitInterface], *, service: str | None, namespace: str
) -> list[messages.WitInterface]:
    """``interfaces`` with the Service's names appended to ``host-aliases`` of each HTTP handler entry,
    so the host accepts them too. Names already there stay (upstream replaces them); without a
    service the entries come back unchanged."""
    if not service:
        return list(interfaces)
    out = []
    for entry in interfaces:
        if is_http_handler(entry.namespace, entry.package, entry.interfaces):
            existing = [part.strip() for part in entry.config.get(ALIASES_KEY, "").split(",") if part.strip()]
            merged = list(dict.fromkeys([*existing, *service_aliases(service, namespace)]))
            entry = entry.model_copy(update={"config": {**entry.config, ALIASES_KEY: ",".join(merged)}})
        out.append(entry)
    return out
