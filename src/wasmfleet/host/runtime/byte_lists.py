"""Load-time retyping of `wasi:io/streams` byte lists as latin-1 strings (the body fast path).

wasmtime's C API moves a `list<u8>` between guest and host as an array of 32-byte values, one per
byte: about 100 ms per MB each way, which made a 1 MB echo 15-65x slower than `wasmtime serve`
(wasm-host-notes.md, pitfall 1). A `string` crosses the same C API as one byte buffer.

In the canonical ABI a `list<u8>` and a `string` have the same core signature and memory layout
(pointer, length), and with `string-encoding=latin1+utf16` every byte value 0-255 is a valid
latin-1 code unit. So, before compiling, we rewrite the component's *import* of wasi:io/streams:
the `list<u8>` result type of its read functions becomes `string`, and the `canon lower` of each
read function gets `string-encoding=latin1+utf16`. Writes (guest to host) are left as byte lists:
lifting a latin1+utf16 string traps unless the guest's pointer is 2-byte aligned, and a guest may
write from any address. The guest's core code is untouched and still
passes (pointer, length); wasmtime copies the bytes as one latin-1 string; the host converts
bytes <-> str with the latin-1 codec (`codec.compile_*(..., latin1_bytes=True)`). The host only
ever returns latin-1 strings, so wasmtime always writes the compact (untagged latin-1) form.

Only the component's top level is parsed; core modules and nested components are copied as
opaque bytes. Anything this parser does not recognise, or a streams instance or function used
other than through `canon lower` (e.g. handed to a nested component), leaves the component as it
was (`retype` returns None); a rewrite that wasmtime then refuses is dropped by the caller. The
rewrite is an optimisation, never a requirement.

Binary format: component-model/design/mvp/Binary.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STREAMS_PREFIX = "wasi:io/streams@0.2"
VERSION = "streams-latin1-v4"
"""Part of the compile cache key: a change to the rewrite must not reuse old artefacts."""

_MAGIC = b"\0asm\x0d\x00\x01\x00"
_LIST_U8 = b"\x70\x7d"
_STRING = b"\x73"
_LATIN1_UTF16 = 0x02
_ENCODING_OPTS = (0x00, 0x01, 0x02)

# Sorts (component level).
_SORT_CORE, _SORT_FUNC, _SORT_VALUE, _SORT_TYPE, _SORT_COMPONENT, _SORT_INSTANCE = range(6)


class _Unsupported(Exception):
    """Something this parser does not handle: leave the component untouched."""


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise _Unsupported("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= self.end:
            raise _Unsupported("truncated")
        return self.data[self.pos]

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise _Unsupported("bad LEB128")

    def s33(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result
            if shift > 35:
                raise _Unsupported("bad LEB128")

    def name(self) -> str:
        n = self.u32()
        start = self.pos
        self.pos += n
        if self.pos > self.end:
            raise _Unsupported("truncated name")
        return self.data[start:self.pos].decode("utf-8", "replace")

    def extern_name(self) -> str:
        tag = self.byte()
        if tag != 0x00:  # 0x01 (version suffix) and later forms: not needed by wit-component output
            raise _Unsupported(f"extern name form {tag:#x}")
        return self.name()


def _u32_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ---- types -------------------------------------------------------------------------------------

def _valtype(r: _Reader, refs: list[int]) -> None:
    v = r.s33()
    if v >= 0:
        refs.append(v)


def _opt_valtype(r: _Reader, refs: list[int]) -> None:
    if r.byte() == 0x01:
        _valtype(r, refs)


def _defvaltype(r: _Reader, refs: list[int]) -> None:
    """Skips one defvaltype, collecting the type indices it refers to."""
    b = r.byte()
    if 0x73 <= b <= 0x7F or b == 0x64:  # primitive
        return
    if b == 0x72:  # record
        for _ in range(r.u32()):
            r.name()
            _valtype(r, refs)
    elif b == 0x71:  # variant
        for _ in range(r.u32()):
            r.name()
            _opt_valtype(r, refs)
            if r.byte() != 0x00:
                raise _Unsupported("variant case refines")
    elif b in (0x70, 0x6B):  # list, option
        _valtype(r, refs)
    elif b == 0x67:  # fixed-size list
        _valtype(r, refs)
        r.u32()
    elif b == 0x6F:  # tuple
        for _ in range(r.u32()):
            _valtype(r, refs)
    elif b in (0x6E, 0x6D):  # flags, enum
        for _ in range(r.u32()):
            r.name()
    elif b == 0x6A:  # result
        _opt_valtype(r, refs)
        _opt_valtype(r, refs)
    elif b in (0x69, 0x68):  # own, borrow
        refs.append(r.u32())
    elif b in (0x66, 0x65):  # stream, future
        _opt_valtype(r, refs)
    else:
        raise _Unsupported(f"type form {b:#x}")


def _externdesc(r: _Reader) -> tuple[int, int]:
    """Returns (kind, index) where index is the type index for func/component/instance/type-eq."""
    kind = r.byte()
    if kind == 0x00:  # core module
        if r.byte() != 0x11:
            raise _Unsupported("core extern")
        return kind, r.u32()
    if kind in (0x01, 0x04, 0x05):
        return kind, r.u32()
    if kind == 0x02:  # value bound
        if r.byte() == 0x00:
            return kind, r.u32()
        _valtype(r, [])
        return kind, -1
    if kind == 0x03:  # type bound
        if r.byte() == 0x00:
            return kind, r.u32()
        return kind, -1  # sub resource
    raise _Unsupported(f"externdesc {kind:#x}")


def _alias(r: _Reader) -> tuple[int, int, int, str]:
    """Returns (sort, target kind, instance index or -1, export name or ''). Core sorts are
    returned as 0x100 + the core sort byte."""
    sort = r.byte()
    if sort == _SORT_CORE:
        sort = 0x100 + r.byte()
    target = r.byte()
    if target in (0x00, 0x01):  # export of a component instance / of a core instance
        idx = r.u32()
        return sort, target, idx, r.name()
    if target == 0x02:  # outer
        r.u32()
        r.u32()
        return sort, target, -1, ""
    raise _Unsupported(f"alias target {target:#x}")


_CORE_FUNC, _CORE_MODULE, _CORE_INSTANCE = 0x100, 0x111, 0x112


Span = tuple[int, int]


@dataclass
class _InstanceType:
    """Where an instance type's byte lists are used: `list<u8>` parameters of its functions (guest
    to host: "write" functions) and `result<list<u8>, _>` results ("read" functions)."""

    write_functions: dict[str, list[Span]] = field(default_factory=dict)  # name -> param valtypes
    read_functions: dict[str, list[Span]] = field(default_factory=dict)  # name -> ok/err valtypes


def _instance_decls(r: _Reader, out: _InstanceType | None) -> None:
    local = 0
    list_u8: set[int] = set()
    byte_results: dict[int, list[Span]] = {}
    func_types: dict[int, tuple[list[Span], int]] = {}  # functype -> (byte params, result type)

    def valtype_span() -> tuple[int, Span]:
        at = r.pos
        return r.s33(), (at, r.pos)

    for _ in range(r.u32()):
        tag = r.byte()
        if tag == 0x01:  # type
            at = r.pos
            form = r.peek()
            if form == 0x40 and out is not None:  # func: only the shapes wasi:io/streams uses
                r.byte()
                params: list[Span] = []
                for _ in range(r.u32()):
                    r.name()
                    v, span = valtype_span()
                    if v in list_u8:
                        params.append(span)
                    elif v in byte_results:
                        raise _Unsupported("byte-list result type used as a parameter")
                result = -1
                rtag = r.byte()
                if rtag == 0x00:
                    result, _ = valtype_span()
                    if result in list_u8:
                        raise _Unsupported("bare list<u8> result")
                elif rtag != 0x01 or r.byte() != 0x00:
                    raise _Unsupported("result list")
                func_types[local] = (params, result)
            elif form == 0x6A and out is not None:  # result<T, E>
                r.byte()
                spans: list[Span] = []
                for _ in range(2):
                    if r.byte() == 0x01:
                        v, span = valtype_span()
                        if v in list_u8:
                            spans.append(span)
                        elif v in byte_results:
                            raise _Unsupported("nested byte-list result")
                if spans:
                    byte_results[local] = spans
            else:
                refs: list[int] = []
                _deftype(r, refs)
                if r.data[at:r.pos] == _LIST_U8:
                    list_u8.add(local)
                elif out is not None and any(ref in list_u8 or ref in byte_results for ref in refs):
                    raise _Unsupported("byte list used in another shape")
            local += 1
        elif tag == 0x02:  # alias
            if _alias(r)[0] == _SORT_TYPE:
                local += 1
        elif tag == 0x04:  # export
            name = r.extern_name()
            kind, idx = _externdesc(r)
            if kind == 0x03:
                if out is not None and (idx in list_u8 or idx in byte_results):
                    raise _Unsupported("byte-list type exported")
                local += 1
            elif kind == 0x01 and out is not None and idx in func_types:
                params, result = func_types[idx]
                if params:
                    out.write_functions[name] = params
                if result in byte_results:
                    out.read_functions[name] = byte_results[result]
        else:  # 0x00: core types inside an instance type
            raise _Unsupported(f"instance declaration {tag:#x}")


def _deftype(r: _Reader, refs: list[int]) -> None:
    b = r.peek()
    if b in (0x40, 0x43):  # func (sync, async)
        r.byte()
        for _ in range(r.u32()):
            r.name()
            _valtype(r, refs)
        tag = r.byte()
        if tag == 0x00:
            _valtype(r, refs)
        elif tag != 0x01 or r.byte() != 0x00:
            raise _Unsupported("result list")
    elif b == 0x42:  # instance
        r.byte()
        _instance_decls(r, None)
    elif b == 0x41:  # component
        r.byte()
        for _ in range(r.u32()):
            if r.peek() == 0x03:  # import
                r.byte()
                r.extern_name()
                _externdesc(r)
            else:
                _instance_decls_one(r)
    elif b == 0x3F:  # resource (sync destructor)
        r.byte()
        if r.byte() != 0x7F:
            raise _Unsupported("resource rep")
        if r.byte() == 0x01:
            r.u32()
    else:
        _defvaltype(r, refs)


def _instance_decls_one(r: _Reader) -> None:
    tag = r.byte()
    if tag == 0x01:
        _deftype(r, [])
    elif tag == 0x02:
        _alias(r)
    elif tag == 0x04:
        r.extern_name()
        _externdesc(r)
    else:
        raise _Unsupported(f"component declaration {tag:#x}")


# ---- the top level -----------------------------------------------------------------------------

@dataclass
class _Lower:
    func: int
    opts_start: int
    opts_end: int
    opts: list[tuple[int, bytes]]  # (opcode, its encoded bytes)
    realloc: int  # core function index, -1 without


@dataclass
class _Scan:
    sections: list[tuple[int, int, int]] = field(default_factory=list)  # (id, payload start, end)
    type_entries: dict[int, int] = field(default_factory=dict)  # type index -> offset of its deftype
    imports: dict[int, tuple[str, int]] = field(default_factory=dict)  # instance idx -> (name, type)
    func_aliases: dict[int, tuple[int, str]] = field(default_factory=dict)  # func -> (instance, name)
    core_func_exports: dict[int, tuple[int, str]] = field(default_factory=dict)  # core func -> (core instance, name)
    core_modules: list[Span | None] = field(default_factory=list)  # bytes of each core module
    core_instances: list[int] = field(default_factory=list)  # core module instantiated, or -1
    lowers: list[_Lower] = field(default_factory=list)
    other_func_refs: set[int] = field(default_factory=set)
    other_instance_refs: set[int] = field(default_factory=set)


def _sortidx(r: _Reader, scan: _Scan) -> int:
    sort = r.byte()
    if sort == _SORT_CORE:
        r.byte()
    idx = r.u32()
    if sort == _SORT_FUNC:
        scan.other_func_refs.add(idx)
    elif sort == _SORT_INSTANCE:
        scan.other_instance_refs.add(idx)
    return sort


def _canon_opts(r: _Reader) -> tuple[list[tuple[int, bytes]], int]:
    opts = []
    realloc = -1
    for _ in range(r.u32()):
        start = r.pos
        op = r.byte()
        if op in (0x03, 0x04, 0x05, 0x07):  # memory, realloc, post-return, callback
            idx = r.u32()
            if op == 0x04:
                realloc = idx
        elif op not in (0x00, 0x01, 0x02, 0x06):  # encodings, async
            raise _Unsupported(f"canon option {op:#x}")
        opts.append((op, r.data[start:r.pos]))
    return opts, realloc


def _scan(data: bytes) -> _Scan:
    if not data.startswith(_MAGIC):
        raise _Unsupported("not a component")
    scan = _Scan()
    types = funcs = instances = core_funcs = 0
    top = _Reader(data, len(_MAGIC), len(data))
    while top.pos < top.end:
        sid = top.byte()
        size = top.u32()
        start, end = top.pos, top.pos + size
        if end > len(data):
            raise _Unsupported("truncated section")
        scan.sections.append((sid, start, end))
        top.pos = end
        r = _Reader(data, start, end)
        if sid == 1:  # core module
            scan.core_modules.append((start, end))
        elif sid == 2:  # core instances
            for _ in range(r.u32()):
                kind = r.byte()
                if kind == 0x00:  # instantiate a module
                    module = r.u32()
                    for _ in range(r.u32()):
                        r.name()
                        if r.byte() != 0x12:
                            raise _Unsupported("core instantiate argument")
                        r.u32()
                    scan.core_instances.append(module)
                elif kind == 0x01:  # from exports
                    for _ in range(r.u32()):
                        r.name()
                        r.byte()
                        r.u32()
                    scan.core_instances.append(-1)
                else:
                    raise _Unsupported(f"core instance form {kind:#x}")
        elif sid == 5:  # instances
            for _ in range(r.u32()):
                kind = r.byte()
                if kind == 0x00:
                    r.u32()
                    for _ in range(r.u32()):
                        r.name()
                        _sortidx(r, scan)
                elif kind == 0x01:
                    for _ in range(r.u32()):
                        r.extern_name()
                        _sortidx(r, scan)
                else:
                    raise _Unsupported(f"instance form {kind:#x}")
                instances += 1
        elif sid == 6:  # aliases
            for _ in range(r.u32()):
                sort, target, inst, name = _alias(r)
                if sort == _SORT_FUNC:
                    if target == 0x00:
                        scan.func_aliases[funcs] = (inst, name)
                    funcs += 1
                elif sort == _SORT_TYPE:
                    types += 1
                elif sort == _SORT_INSTANCE:
                    if target == 0x00:
                        scan.other_instance_refs.add(inst)
                    instances += 1
                elif sort == _CORE_FUNC:
                    if target == 0x01:
                        scan.core_func_exports[core_funcs] = (inst, name)
                    core_funcs += 1
                elif sort == _CORE_MODULE:
                    scan.core_modules.append(None)
                elif sort == _CORE_INSTANCE:
                    scan.core_instances.append(-1)
        elif sid == 7:  # types
            for _ in range(r.u32()):
                scan.type_entries[types] = r.pos
                _deftype(r, [])
                types += 1
        elif sid == 8:  # canon
            for _ in range(r.u32()):
                op = r.byte()
                if op == 0x00:  # lift
                    if r.byte() != 0x00:
                        raise _Unsupported("lift form")
                    r.u32()
                    _canon_opts(r)
                    r.u32()
                    funcs += 1
                elif op == 0x01:  # lower
                    if r.byte() != 0x00:
                        raise _Unsupported("lower form")
                    func = r.u32()
                    opts_start = r.pos
                    opts, realloc = _canon_opts(r)
                    scan.lowers.append(_Lower(func, opts_start, r.pos, opts, realloc))
                    core_funcs += 1
                elif op in (0x02, 0x03, 0x04, 0x07):  # resource.new/drop/rep, drop async
                    r.u32()
                    core_funcs += 1
                else:
                    raise _Unsupported(f"canon {op:#x}")
        elif sid == 10:  # imports
            for _ in range(r.u32()):
                name = r.extern_name()
                kind, idx = _externdesc(r)
                if kind == 0x01:
                    funcs += 1
                elif kind == 0x03:
                    types += 1
                elif kind == 0x05:
                    scan.imports[instances] = (name, idx)
                    instances += 1
                elif kind == 0x00:
                    scan.core_modules.append(None)
        elif sid == 11:  # exports
            for _ in range(r.u32()):
                r.extern_name()
                sort = _sortidx(r, scan)
                if r.byte() == 0x01:
                    _externdesc(r)
                if sort == _SORT_FUNC:
                    funcs += 1
                elif sort == _SORT_TYPE:
                    types += 1
                elif sort == _SORT_INSTANCE:
                    instances += 1
        elif sid in (9, 12):  # start, values: may use functions in ways not tracked here
            raise _Unsupported(f"section {sid}")
        # 0 custom, 3 core type, 4 component: opaque here.
    return scan


# The canonical ABI's allocator names (cm32p2_* is wit-component's newer naming).
_REALLOC_NAMES = frozenset({"cabi_realloc", "cm32p2_realloc"})


def _module_defines(data: bytes, span: Span, name: str) -> bool:
    """Whether the core module exports `name` as a function it defines (not a re-exported
    import, e.g. a shared library's `env` forwarder)."""
    r = _Reader(data, span[0] + 8, span[1])
    imported_funcs = 0
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        end = r.pos + size
        if sid == 2:  # imports
            for _ in range(r.u32()):
                r.name()
                r.name()
                kind = r.byte()
                if kind == 0x00:
                    imported_funcs += 1
                    r.u32()
                elif kind == 0x01:  # table: reftype + limits
                    r.byte()
                    _core_limits(r)
                elif kind == 0x02:  # memory
                    _core_limits(r)
                elif kind == 0x03:  # global
                    r.byte()
                    r.byte()
                elif kind == 0x04:  # tag
                    r.byte()
                    r.u32()
                else:
                    raise _Unsupported(f"core import kind {kind:#x}")
        elif sid == 7:  # exports
            for _ in range(r.u32()):
                export = r.name()
                kind = r.byte()
                idx = r.u32()
                if export == name and kind == 0x00:
                    return idx >= imported_funcs
            return False
        r.pos = end
    return False


def _core_limits(r: _Reader) -> None:
    flags = r.byte()
    r.u32() if not flags & 0x04 else r.s33()
    if flags & 0x01:
        r.u32()


def _shrinkable_realloc(data: bytes, scan: _Scan, core_func: int) -> bool:
    """Whether this realloc can be trusted to shrink a block in place or by copying: wasmtime's
    latin-1 lowering allocates the UTF-8 length and then shrinks (Canonical ABI
    `store_string_to_latin1_or_utf16`). Trusted only when it is a canonical-ABI allocator defined
    in its own module; forwarders and special-purpose allocators are not (the preview1 adapter's
    one-shot `cabi_import_realloc` and componentize-py's runtime allocator both trap on a shrink),
    so results lowered through them stay byte lists."""
    source = scan.core_func_exports.get(core_func)
    if source is None or source[1] not in _REALLOC_NAMES:
        return False
    inst, name = source
    module = scan.core_instances[inst] if 0 <= inst < len(scan.core_instances) else -1
    span = scan.core_modules[module] if 0 <= module < len(scan.core_modules) else None
    return span is not None and _module_defines(data, span, name)


def retype(data: bytes) -> bytes | None:
    """The component with its wasi:io/streams byte lists retyped as latin-1 strings, or None when
    there is nothing to rewrite or the component's shape is not one this rewrite understands."""
    try:
        return _retype(data)
    except (_Unsupported, IndexError, UnicodeDecodeError):
        return None


def _retype(data: bytes) -> bytes | None:
    scan = _scan(data)
    streams = {i: t for i, (name, t) in scan.imports.items() if name.startswith(STREAMS_PREFIX)}
    if not streams or streams.keys() & scan.other_instance_refs:
        return None
    type_edits: set[Span] = set()
    latin1_funcs: set[int] = set()
    for inst, type_idx in streams.items():
        at = scan.type_entries.get(type_idx)
        if at is None:
            return None  # the instance type came from an alias or import: not rewritten
        r = _Reader(data, at, len(data))
        if r.byte() != 0x42:
            return None
        info = _InstanceType()
        _instance_decls(r, info)
        funcs = {f: n for f, (i, n) in scan.func_aliases.items() if i == inst}
        reads = {f for f, n in funcs.items() if n in info.read_functions}
        # Only reads (host to guest): the host's string goes through the guest's realloc, asked for
        # 2-byte alignment. Writes (guest to host) stay list<u8>: latin1+utf16 lifting traps unless
        # the guest's pointer is 2-byte aligned, and a guest may write from any address (C stdio
        # buffers do, from the second printf on).
        # Read results share their result type: retype them all or none.
        if all(_shrinkable_realloc(data, scan, low.realloc) for low in scan.lowers if low.func in reads):
            latin1_funcs |= reads
            type_edits |= {s for n in info.read_functions for s in info.read_functions[n]}
    if not type_edits or latin1_funcs & scan.other_func_refs:
        return None
    edits = [(a, b, _STRING) for a, b in type_edits]
    for low in scan.lowers:
        if low.func in latin1_funcs:
            if not any(op == 0x03 for op, _ in low.opts):
                return None  # a list needs a memory option; something is off
            kept = [raw for op, raw in low.opts if op not in _ENCODING_OPTS]
            edits.append((low.opts_start, low.opts_end,
                          _u32_bytes(len(kept) + 1) + b"".join(kept) + bytes([_LATIN1_UTF16])))
    return _apply(data, scan.sections, edits)


def _apply(data: bytes, sections: list[tuple[int, int, int]], edits: list[tuple[int, int, bytes]]) -> bytes:
    edits.sort()
    out = bytearray(data[: len(_MAGIC)])
    i = 0
    for sid, start, end in sections:
        payload = bytearray()
        pos = start
        while i < len(edits) and edits[i][0] < end:
            e_start, e_end, replacement = edits[i]
            payload += data[pos:e_start]
            payload += replacement
            pos = e_end
            i += 1
        payload += data[pos:end]
        out.append(sid)
        out += _u32_bytes(len(payload))
        out += payload
    return bytes(out)
