"""Loads the optional C host-call entry (`_fasthost.c`) and sets it up with wasmtime's C API.

`MODULE` is None when the extension was not built (no C compiler at install time); the runtime
then uses the pure-Python trampoline in `hostfuncs`, which behaves the same, only slower per host
call. Whether a linker uses it is `EngineSettings.fast_host_calls` (passed down, not read here).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

MODULE: Any = None
try:
    from wasmfleet.host.runtime import _fasthost as MODULE
except ImportError:  # not built: the pure-Python path serves
    MODULE = None

# Parameter and result kinds of a compiled host function (keep in step with _fasthost.c).
A_BORROW, A_OWN, A_STRING, A_LATIN1, A_BYTES, A_U32, A_U64, A_S32, A_S64, A_BOOL, A_PY = range(11)
R_NONE, R_OWN, R_RESULT_UNIT, R_RESULT_OWN, R_RESULT_LATIN1, R_U32, R_U64, R_S32, R_S64, R_BOOL = range(10)
R_STRING, R_PY = 10, 11
MAX_ARGS = 8

_C_FUNCTIONS = (
    "wasmtime_component_resource_any_to_host",
    "wasmtime_component_resource_host_rep",
    "wasmtime_component_resource_host_delete",
    "wasmtime_component_resource_host_new",
    "wasmtime_component_resource_host_to_any",
    "wasm_byte_vec_new_uninitialized",
    "wasmtime_component_val_new",
    "wasmtime_error_delete",
)


def setup(fail: Callable[[BaseException], int]) -> None:
    """Hands the C module wasmtime's function addresses and the exception-to-trap converter."""
    if MODULE is None:
        return
    addresses = tuple(
        ctypes.cast(ffi.dll._FuncPtr((name, ffi.dll)), ctypes.c_void_p).value for name in _C_FUNCTIONS
    )
    MODULE.init(addresses, fail, WasmtimeError)


def trampoline_address() -> int:
    assert MODULE is not None
    address: int = MODULE.trampoline_address()
    return address


def finalizer_address() -> int:
    assert MODULE is not None
    address: int = MODULE.finalizer_address()
    return address
