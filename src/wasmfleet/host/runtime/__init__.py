"""The Wasm data plane of a host: compile, link and run WASI 0.2 components and serve wasi:http.

Public entry points: `specs` (what to run), `server.WasmServer` (HTTP serving across worker
processes), `errors` (one-line, user-facing failures) and `capabilities` (what can be linked).
"""
