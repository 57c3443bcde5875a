"""What a host interface implementation is written against: built-in WASI and plugins alike.

The bottom of the host's Wasm stack (`runtime` -> `wasi` | `plugins` -> `plugin_api`, enforced by
.importlinter): the `Interface` table entry and result helpers (`interfaces`), the per-store table
of Python objects behind guest handles (`handle_tables`), the per-store WASI state a host function
reads (`store_state`), the per-workload guest log (`guestlogs`) and the plugin contract
(`host_plugins`). Nothing here imports the runtime or an implementation.
"""
