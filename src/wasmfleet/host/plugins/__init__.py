"""Built-in host plugins beyond WASI 0.2 (one module per interface family).

Each is declared in wasmfleet's pyproject.toml under the entry-point group
`wasmfleet.host_interfaces`, exactly like a third-party plugin (docs/plugins.md).
"""
