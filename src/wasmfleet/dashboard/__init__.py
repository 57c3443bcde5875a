"""The read-only web dashboard: hosts, deployments, workloads, events, placement and traffic at a glance.

A layer beside the gateway: it reads the API server through `kube` (one shared informer per kind, so N
browser tabs cost one watch per kind) and the Prometheus /metrics of the gateway and hosts; it never
imports the operator, host or gateway packages. See docs/dashboard.md.
"""
