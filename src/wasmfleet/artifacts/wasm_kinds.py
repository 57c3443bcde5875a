"""Tell a WebAssembly component from a core module (or from something that is not wasm at all).

Both start with the magic `\\0asm`; the next four bytes are a 16-bit version and a 16-bit *layer*
(little endian). Layer 0 is a core module (version 1), layer 1 a component (version 0x0d during the
component-model preview). wasmfleet runs components only, so publishing and pushing refuse the rest
here, before any host tries to compile them.
"""

from __future__ import annotations

from wasmfleet.artifacts.errors import ArtifactError

MAGIC = b"\0asm"
HEADER_BYTES = 8
COMPONENT_LAYER = 1
CORE_MODULE_LAYER = 0


def describe(header: bytes) -> str:
    """"component", "core module", or why the bytes are not wasm, from the first 8 bytes."""
    if len(header) < HEADER_BYTES:
        return f"not wasm ({len(header)} bytes, too short for a wasm header)"
    if header[:4] != MAGIC:
        return f"not wasm (starts with {header[:4]!r}, not the wasm magic)"
    version = int.from_bytes(header[4:6], "little")
    layer = int.from_bytes(header[6:8], "little")
    if layer == COMPONENT_LAYER:
        return "component"
    if layer == CORE_MODULE_LAYER:
        return "core module"
    return f"unknown wasm layer {layer} (version {version})"


def check_component(image: str, header: bytes) -> None:
    """Raise a non-retryable ArtifactError unless `header` starts a wasm component."""
    kind = describe(header)
    if kind == "component":
        return
    if kind == "core module":
        raise ArtifactError(
            image, "layer is a core wasm module, not a component (build it as a component, e.g. wasm-tools "
            "component new)"
        )
    raise ArtifactError(image, f"layer is {kind}, not a wasm component")
