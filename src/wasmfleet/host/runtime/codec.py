"""Conversion of component-model values between wasmtime's C representation and Python.

wasmtime-py converts values by re-reading types from C on every call and copies `list<u8>` one
element at a time (wasm-host-notes.md, pitfall 1). Here each WIT type is compiled ONCE into a
pair of closures (lift: C -> Python, lower: Python -> C) and byte lists are copied in bulk with
strided slices over the 32-byte value array.

Python shapes (explicit, never guessed per call):
  bool/ints/floats/char/string -> themselves; list<u8> -> bytes; other lists -> list
  record/tuple -> tuple (fields in declaration order)
  variant -> (case-name, payload|None); enum -> case-name; flags -> frozenset of names
  option<T> -> None | T;  result<T, E> -> ("ok", T|None) | ("err", E|None)
  own<R>/borrow<R> of a host resource -> the Python object kept in the store's `ResourceTable`
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables

Ctx = Any  # ctypes pointer to wasmtime_context_t
Val = Any  # a wasmtime_component_val_t structure (ctypes view)
Lift = Callable[[Ctx, Val], Any]
Lower = Callable[[Ctx, Any, Val], None]

VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val_t.of.offset

# Value kinds (wasmtime_component_valkind_t), as plain ints for speed.
K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64 = range(9)
K_F32, K_F64, K_CHAR, K_STRING, K_LIST, K_RECORD, K_TUPLE, K_VARIANT = range(9, 17)
K_ENUM, K_OPTION, K_RESULT, K_FLAGS, K_RESOURCE = range(17, 22)

_string_at = ctypes.string_at
_byref = ctypes.byref
# A private prototype of wasmtime_component_val_new (wasmtime-py's wrapper adds a Python frame
# and a typed-pointer check to every boxed option/result payload).
_val_new = ffi.dll._FuncPtr(("wasmtime_component_val_new", ffi.dll))
_val_new.restype = ctypes.POINTER(ffi.wasmtime_component_val_t)
_val_new.argtypes = [ctypes.c_void_p]
_byte_vec_uninit = ffi.wasm_byte_vec_new_uninitialized
_memmove = ctypes.memmove
_addressof = ctypes.addressof


def _read_bytes(vec: Any) -> bytes:
    n = vec.size
    return _string_at(vec.data, n) if n else b""


def _write_bytes(vec: Any, data: bytes) -> None:
    n = len(data)
    _byte_vec_uninit(_byref(vec), n)
    if n:
        _memmove(vec.data, data, n)


def _box(ctx: Ctx, lower: Lower, value: Any) -> Any:
    """Lowers `value` into a heap-allocated val (for option/result/variant payloads)."""
    tmp = ffi.wasmtime_component_val_t()
    lower(ctx, value, tmp)
    return _val_new(_byref(tmp))


def compile_lift(ty: cm.ValType, latin1: bool = False) -> Lift:
    """`latin1`: strings are byte buffers retyped by `byte_lists` (lifted as bytes)."""
    if isinstance(ty, cm.Bool):
        return lambda ctx, v: bool(v.of.boolean)
    if isinstance(ty, cm.U8):
        return lambda ctx, v: v.of.u8
    if isinstance(ty, cm.U16):
        return lambda ctx, v: v.of.u16
    if isinstance(ty, cm.U32):
        return lambda ctx, v: v.of.u32
    if isinstance(ty, cm.U64):
        return lambda ctx, v: v.of.u64
    if isinstance(ty, cm.S8):
        return lambda ctx, v: v.of.s8
    if isinstance(ty, cm.S16):
        return lambda ctx, v: v.of.s16
    if isinstance(ty, cm.S32):
        return lambda ctx, v: v.of.s32
    if isinstance(ty, cm.S64):
        return lambda ctx, v: v.of.s64
    if isinstance(ty, cm.F32):
        return lambda ctx, v: v.of.f32
    if isinstance(ty, cm.F64):
        return lambda ctx, v: v.of.f64
    if isinstance(ty, cm.Char):
        return lambda ctx, v: chr(v.of.character)
    if isinstance(ty, cm.String):
        if latin1:
            return lambda ctx, v: _read_bytes(v.of.string).decode("utf-8").encode("latin-1")
        return lambda ctx, v: _read_bytes(v.of.string).decode("utf-8")
    if isinstance(ty, cm.ListType):
        elem = ty.element
        if isinstance(elem, cm.U8):
            return _lift_bytes
        lift_elem = compile_lift(elem, latin1)

        def lift_list(ctx: Ctx, v: Val) -> list[Any]:
            lst = v.of.list
            data = lst.data
            return [lift_elem(ctx, data[i]) for i in range(lst.size)]

        return lift_list
    if isinstance(ty, cm.RecordType):
        lifts = [compile_lift(t, latin1) for _, t in ty.fields]

        def lift_record(ctx: Ctx, v: Val) -> tuple[Any, ...]:
            data = v.of.record.data
            return tuple(lift(ctx, data[i].val) for i, lift in enumerate(lifts))

        return lift_record
    if isinstance(ty, cm.TupleType):
        tlifts = [compile_lift(t, latin1) for t in ty.elements]

        def lift_tuple(ctx: Ctx, v: Val) -> tuple[Any, ...]:
            data = v.of.tuple.data
            return tuple(lift(ctx, data[i]) for i, lift in enumerate(tlifts))

        return lift_tuple
    if isinstance(ty, cm.VariantType):
        cases = {name: (compile_lift(t, latin1) if t is not None else None) for name, t in ty.cases}

        def lift_variant(ctx: Ctx, v: Val) -> tuple[str, Any]:
            var = v.of.variant
            name = _read_bytes(var.discriminant).decode()
            lift = cases[name]
            return (name, lift(ctx, var.val.contents) if lift is not None and var.val else None)

        return lift_variant
    if isinstance(ty, cm.EnumType):
        return lambda ctx, v: _read_bytes(v.of.enumeration).decode()
    if isinstance(ty, cm.OptionType):
        lift_some = compile_lift(ty.payload, latin1)

        def lift_option(ctx: Ctx, v: Val) -> Any:
            p = v.of.option
            return lift_some(ctx, p.contents) if p else None

        return lift_option
    if isinstance(ty, cm.ResultType):
        ok_t, err_t = ty.ok, ty.err
        lift_ok = compile_lift(ok_t, latin1) if ok_t is not None else None
        lift_err = compile_lift(err_t, latin1) if err_t is not None else None

        def lift_result(ctx: Ctx, v: Val) -> tuple[str, Any]:
            r = v.of.result
            if r.is_ok:
                return ("ok", lift_ok(ctx, r.val.contents) if lift_ok and r.val else None)
            return ("err", lift_err(ctx, r.val.contents) if lift_err and r.val else None)

        return lift_result
    if isinstance(ty, cm.FlagsType):

        def lift_flags(ctx: Ctx, v: Val) -> frozenset[str]:
            f = v.of.flags
            return frozenset(_read_bytes(f.data[i]).decode() for i in range(f.size))

        return lift_flags
    if isinstance(ty, cm.OwnType):
        return handle_tables.lift_own
    if isinstance(ty, cm.BorrowType):
        return handle_tables.lift_borrow
    raise TypeError(f"unsupported component value type {type(ty).__name__}")


LiftAt = Callable[[Ctx, int], Any]
_VAL_AT = ffi.wasmtime_component_val_t.from_address
_u32_at = ctypes.c_uint32.from_address
_u64_at = ctypes.c_uint64.from_address
_s32_at = ctypes.c_int32.from_address
_s64_at = ctypes.c_int64.from_address
_size_at = ctypes.c_size_t.from_address
_ptr_at = ctypes.c_void_p.from_address
_STRING_SIZE = _PAYLOAD_OFFSET + ffi.wasm_byte_vec_t.size.offset  # type: ignore[attr-defined]
_STRING_DATA = _PAYLOAD_OFFSET + ffi.wasm_byte_vec_t.data.offset  # type: ignore[attr-defined]
_LIST_SIZE = _PAYLOAD_OFFSET + ffi.wasmtime_component_vallist_t.size.offset  # type: ignore[attr-defined]
_LIST_DATA = _PAYLOAD_OFFSET + ffi.wasmtime_component_vallist_t.data.offset  # type: ignore[attr-defined]


def _lift_string_at(ctx: Ctx, address: int) -> str:
    n = _size_at(address + _STRING_SIZE).value
    data = _ptr_at(address + _STRING_DATA).value
    return _string_at(data, n).decode("utf-8") if n and data else ""


def _lift_latin1_bytes_at(ctx: Ctx, address: int) -> bytes:
    n = _size_at(address + _STRING_SIZE).value
    data = _ptr_at(address + _STRING_DATA).value
    return _string_at(data, n).decode("utf-8").encode("latin-1") if n and data else b""


def _lower_latin1_bytes(ctx: Ctx, value: bytes, v: Val) -> None:
    # wasmtime writes the guest's copy as latin-1 (one byte per code point): see byte_lists.
    _write_bytes(v.of.string, value.decode("latin-1").encode("utf-8"))
    v.kind = K_STRING


def compile_lift_at(ty: cm.ValType, latin1: bool = False) -> LiftAt:
    """Like `compile_lift`, for a val given by address: the common argument types (handles,
    strings, 32/64-bit integers) are read in place, without building a ctypes view of the val."""
    if isinstance(ty, cm.OwnType):
        return handle_tables.lift_own_at
    if isinstance(ty, cm.BorrowType):
        return handle_tables.lift_borrow_at
    if isinstance(ty, cm.String):
        return _lift_latin1_bytes_at if latin1 else _lift_string_at
    if isinstance(ty, cm.ListType) and isinstance(ty.element, cm.U8):
        return _lift_bytes_at
    off = _PAYLOAD_OFFSET
    for cls, reader in ((cm.U32, _u32_at), (cm.U64, _u64_at), (cm.S32, _s32_at), (cm.S64, _s64_at)):
        if isinstance(ty, cls):
            return lambda ctx, address, read=reader: read(address + off).value  # type: ignore[misc]
    lift = compile_lift(ty, latin1)
    return lambda ctx, address: lift(ctx, _VAL_AT(address))


_SMALL_LIST = 512


def _val_array(address: int, n: int) -> memoryview:
    """The n 32-byte vals at `address` as a flat byte view (no copy)."""
    return memoryview((ctypes.c_char * (n * VAL_SIZE)).from_address(address)).cast("B")


def _lift_bytes_at(ctx: Ctx, address: int) -> bytes:
    n = _size_at(address + _LIST_SIZE).value
    data = _ptr_at(address + _LIST_DATA).value
    if not n or not data:
        return b""
    if n <= _SMALL_LIST:
        # Short lists (header values, small writes): copying the vals out and slicing the copy
        # is cheaper than building a ctypes array type and a memoryview over it.
        return _string_at(data, n * VAL_SIZE)[_PAYLOAD_OFFSET::VAL_SIZE]
    return _val_array(data, n)[_PAYLOAD_OFFSET::VAL_SIZE].tobytes()


def _lift_bytes(ctx: Ctx, v: Val) -> bytes:
    lst = v.of.list
    n = lst.size
    if not n:
        return b""
    # Each element is a 32-byte val whose u8 payload sits at offset 8: gather every 32nd byte
    # straight from wasmtime's array (one strided copy, no intermediate buffer).
    return _val_array(_addressof(lst.data.contents), n)[_PAYLOAD_OFFSET::VAL_SIZE].tobytes()


_KIND_U8 = bytes((K_U8,))


def _lower_bytes(ctx: Ctx, data: bytes, v: Val) -> None:
    n = len(data)
    lst = v.of.list
    ffi.wasmtime_component_vallist_new_uninit(_byref(lst), n)
    if n:
        # Fill wasmtime's freshly allocated array in place: kind byte and payload byte per val.
        view = _val_array(_addressof(lst.data.contents), n)
        view[0::VAL_SIZE] = _KIND_U8 * n
        view[_PAYLOAD_OFFSET::VAL_SIZE] = data
    v.kind = K_LIST


def _scalar(kind: int, field: str, conv: Callable[[Any], Any] = lambda x: x) -> Lower:
    def lower(ctx: Ctx, value: Any, v: Val) -> None:
        v.kind = kind
        setattr(v.of, field, conv(value))

    return lower


def compile_lower(ty: cm.ValType, type_ids: handle_tables.TypeIds, latin1: bool = False) -> Lower:
    """`latin1`: strings are byte buffers retyped by `byte_lists` (lowered from bytes)."""
    if isinstance(ty, cm.Bool):
        return _scalar(K_BOOL, "boolean", bool)
    for cls, kind, field in (
        (cm.U8, K_U8, "u8"), (cm.U16, K_U16, "u16"), (cm.U32, K_U32, "u32"), (cm.U64, K_U64, "u64"),
        (cm.S8, K_S8, "s8"), (cm.S16, K_S16, "s16"), (cm.S32, K_S32, "s32"), (cm.S64, K_S64, "s64"),
        (cm.F32, K_F32, "f32"), (cm.F64, K_F64, "f64"),
    ):
        if isinstance(ty, cls):
            return _scalar(kind, field)
    if isinstance(ty, cm.Char):
        return _scalar(K_CHAR, "character", ord)
    if isinstance(ty, cm.String) and latin1:
        return _lower_latin1_bytes
    if isinstance(ty, cm.String):

        def lower_string(ctx: Ctx, value: str, v: Val) -> None:
            _write_bytes(v.of.string, value.encode("utf-8"))
            v.kind = K_STRING

        return lower_string
    if isinstance(ty, cm.ListType):
        elem = ty.element
        if isinstance(elem, cm.U8):
            return _lower_bytes
        lower_elem = compile_lower(elem, type_ids, latin1)

        def lower_list(ctx: Ctx, value: list[Any], v: Val) -> None:
            lst = v.of.list
            ffi.wasmtime_component_vallist_new_uninit(_byref(lst), len(value))
            data = lst.data
            for i, item in enumerate(value):
                lower_elem(ctx, item, data[i])
            v.kind = K_LIST

        return lower_list
    if isinstance(ty, cm.RecordType):
        fields = [(name.encode(), compile_lower(t, type_ids, latin1)) for name, t in ty.fields]

        def lower_record(ctx: Ctx, value: tuple[Any, ...], v: Val) -> None:
            rec = v.of.record
            ffi.wasmtime_component_valrecord_new_uninit(_byref(rec), len(fields))
            data = rec.data
            for i, (name, lower) in enumerate(fields):
                entry = data[i]
                _write_bytes(entry.name, name)
                lower(ctx, value[i], entry.val)
            v.kind = K_RECORD

        return lower_record
    if isinstance(ty, cm.TupleType):
        elems = [compile_lower(t, type_ids, latin1) for t in ty.elements]

        def lower_tuple(ctx: Ctx, value: tuple[Any, ...], v: Val) -> None:
            tup = v.of.tuple
            ffi.wasmtime_component_valtuple_new_uninit(_byref(tup), len(elems))
            data = tup.data
            for i, lower in enumerate(elems):
                lower(ctx, value[i], data[i])
            v.kind = K_TUPLE

        return lower_tuple
    if isinstance(ty, cm.VariantType):
        vcases = {
            name: (name.encode(), compile_lower(t, type_ids, latin1) if t is not None else None)
            for name, t in ty.cases
        }

        def lower_variant(ctx: Ctx, value: tuple[str, Any], v: Val) -> None:
            name, payload = value
            encoded, lower = vcases[name]
            var = v.of.variant
            _write_bytes(var.discriminant, encoded)
            var.val = _box(ctx, lower, payload) if lower is not None else None
            v.kind = K_VARIANT

        return lower_variant
    if isinstance(ty, cm.EnumType):

        def lower_enum(ctx: Ctx, value: str, v: Val) -> None:
            _write_bytes(v.of.enumeration, value.encode())
            v.kind = K_ENUM

        return lower_enum
    if isinstance(ty, cm.OptionType):
        lower_some = compile_lower(ty.payload, type_ids, latin1)

        def lower_option(ctx: Ctx, value: Any, v: Val) -> None:
            v.of.option = None if value is None else _box(ctx, lower_some, value)
            v.kind = K_OPTION

        return lower_option
    if isinstance(ty, cm.ResultType):
        ok_t, err_t = ty.ok, ty.err
        lower_ok = compile_lower(ok_t, type_ids, latin1) if ok_t is not None else None
        lower_err = compile_lower(err_t, type_ids, latin1) if err_t is not None else None

        def lower_result(ctx: Ctx, value: tuple[str, Any], v: Val) -> None:
            tag, payload = value
            r = v.of.result
            if tag == "ok":
                r.is_ok = True
                r.val = _box(ctx, lower_ok, payload) if lower_ok is not None else None
            else:
                r.is_ok = False
                r.val = _box(ctx, lower_err, payload) if lower_err is not None else None
            v.kind = K_RESULT

        return lower_result
    if isinstance(ty, cm.FlagsType):

        def lower_flags(ctx: Ctx, value: frozenset[str], v: Val) -> None:
            f = v.of.flags
            names = sorted(value)
            ffi.wasmtime_component_valflags_new_uninit(_byref(f), len(names))
            for i, name in enumerate(names):
                _write_bytes(f.data[i], name.encode())
            v.kind = K_FLAGS

        return lower_flags
    if isinstance(ty, cm.OwnType):
        return handle_tables.lower_own(type_ids.id_of(ty.ty))
    if isinstance(ty, cm.BorrowType):
        return handle_tables.lower_own(type_ids.id_of(ty.ty))
    raise TypeError(f"unsupported component value type {type(ty).__name__}")
