/* Host-call entry for wasmtime's component C API, in C (optional accelerator for hostfuncs.py).
 *
 * A guest's call into a host function reaches a ctypes callback in the pure-Python path: libffi
 * converts seven C arguments into Python objects, then Python code lifts each wasmtime value
 * (three ctypes calls per resource handle) and lowers the result. That entry cost, not the WASI
 * logic, dominated a small request (about 10 us per host call). Here the same work is compiled
 * per function into a short "program" (one kind per parameter and one for the result) that is
 * run in C; only the WASI implementation itself (a Python callable) and the rare value shapes
 * marked PY run Python code. The shapes and their Python meaning are exactly those of codec.py,
 * which remains the reference (and the fallback when this module is not built).
 *
 * wasmtime's C API functions are not linked: their addresses come from wasmtime-py's loaded
 * library via `init`, so this module builds against Python.h alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* wasmtime_component_val_t: a kind byte, then a 24-byte payload at offset 8 (32 bytes). */
typedef struct {
    uint8_t kind;
    uint8_t pad_[7];
    uint64_t p0, p1, p2;
} val_t;
_Static_assert(sizeof(val_t) == 32, "wasmtime_component_val_t is 32 bytes");

enum { K_BOOL = 0, K_S32 = 5, K_U32 = 6, K_S64 = 7, K_U64 = 8, K_STRING = 12, K_RESULT = 19, K_RESOURCE = 21 };

/* Parameter kinds (see hostfuncs._fast_program). */
enum { A_BORROW, A_OWN, A_STRING, A_LATIN1, A_BYTES, A_U32, A_U64, A_S32, A_S64, A_BOOL, A_PY };
/* Result kinds. */
enum { R_NONE, R_OWN, R_RESULT_UNIT, R_RESULT_OWN, R_RESULT_LATIN1, R_U32, R_U64, R_S32, R_S64, R_BOOL,
       R_STRING, R_PY };

#define MAX_ARGS 8

typedef void *(*any_to_host_t)(void *ctx, void *any, void **out);
typedef uint32_t (*host_rep_t)(void *host);
typedef void (*host_delete_t)(void *host);
typedef void *(*host_new_t)(bool owned, uint32_t rep, uint32_t ty);
typedef void *(*host_to_any_t)(void *ctx, void *host, void **out);
typedef void (*byte_vec_new_uninit_t)(void *vec, size_t n);
typedef val_t *(*val_new_t)(val_t *val);
typedef void (*error_delete_t)(void *err);

static any_to_host_t any_to_host;
static host_rep_t host_rep;
static host_delete_t host_delete;
static host_new_t host_new;
static host_to_any_t host_to_any;
static byte_vec_new_uninit_t byte_vec_new_uninit;
static val_new_t val_new;
static error_delete_t error_delete;

static PyObject *fail_fn;    /* Python: exception -> address of a new wasmtime_error_t */
static PyObject *error_type; /* wasmtime.WasmtimeError */
static PyObject *str_add;

typedef struct {
    PyObject *fn;
    int nargs;
    uint8_t argk[MAX_ARGS];
    PyObject *argfb[MAX_ARGS]; /* A_PY: lift_at(ctx, address) */
    int resk;
    uint32_t restype;
    PyObject *resfb; /* lower_at(ctx, value, address): for R_PY and every non-fast shape */
} entry_t;

static entry_t **entries;
static Py_ssize_t n_entries, cap_entries;
/* Indices of finalized entries, reused by register (a host re-links on every workload start). */
static Py_ssize_t *free_idx;
static Py_ssize_t n_free, cap_free;

/* The current store's ResourceTable and its `objects` dict, per thread (set with set_table
 * around every guest call, like resources.swap). Borrowed: the caller keeps them alive. */
static _Thread_local PyObject *cur_table;
static _Thread_local PyObject *cur_objects;

/* ---- lifting ------------------------------------------------------------------------------- */

static PyObject *lift_handle(void *ctx, const val_t *v, int own) {
    void *host = NULL;
    void *err = any_to_host(ctx, (void *)(uintptr_t)v->p0, &host);
    if (err) {
        error_delete(err);
        PyErr_SetString(error_type, "cannot convert a resource handle");
        return NULL;
    }
    uint32_t rep = host_rep(host);
    host_delete(host);
    if (cur_objects == NULL) {
        PyErr_SetString(error_type, "host call outside of a guest invocation");
        return NULL;
    }
    PyObject *key = PyLong_FromUnsignedLong(rep);
    if (key == NULL) return NULL;
    PyObject *obj = PyDict_GetItemWithError(cur_objects, key); /* borrowed */
    if (obj == NULL) {
        Py_DECREF(key);
        if (!PyErr_Occurred()) PyErr_SetString(error_type, "unknown resource handle");
        return NULL;
    }
    Py_INCREF(obj);
    if (own && PyDict_DelItem(cur_objects, key) < 0) {
        Py_DECREF(key);
        Py_DECREF(obj);
        return NULL;
    }
    Py_DECREF(key);
    return obj;
}

#define HIGH_BITS 0x8080808080808080ULL

/* UTF-8 of latin-1 code points (what wasmtime hands over for a retyped byte list) -> bytes.
 * Runs of ASCII are copied eight bytes at a time. Otherwise every input byte that is not a
 * continuation byte yields one output byte: written unconditionally, the output index advancing
 * only past non-continuations, so the loop has no data-dependent branches (binary bodies mix
 * one- and two-byte characters at random, which defeats branch prediction). */
static PyObject *utf8_latin1_to_bytes(const unsigned char *s, size_t n) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out == NULL) return NULL;
    unsigned char *d = (unsigned char *)PyBytes_AS_STRING(out);
    size_t i = 0, j = 0;
    unsigned bad = 0;
    while (i + 8 < n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (!(w & HIGH_BITS)) {
            memcpy(d + j, s + i, 8);
            i += 8;
            j += 8;
            continue;
        }
        size_t end = i + 8;  /* s[i + 1] stays inside: end < n */
        for (; i < end; i++) {
            unsigned c = s[i], cont = (c & 0xC0) == 0x80, mask = 0u - (c >> 7);
            unsigned two = ((c & 0x03) << 6) | (s[i + 1] & 0x3F);
            d[j] = (unsigned char)((c & ~mask) | (two & mask));
            bad |= (c >= 0xC0) & ((c & 0xFE) != 0xC2);
            j += !cont;
        }
    }
    for (; i < n; i++) {
        unsigned c = s[i];
        if ((c & 0xC0) == 0x80) continue;  /* continuation: consumed with its lead byte */
        if (c < 0x80) {
            d[j++] = (unsigned char)c;
        } else if ((c & 0xFE) == 0xC2 && i + 1 < n) {
            d[j++] = (unsigned char)(((c & 0x03) << 6) | (s[i + 1] & 0x3F));
        } else {
            bad = 1;
        }
    }
    if (bad) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_ValueError, "byte string holds a code point above U+00FF");
        return NULL;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)j) < 0) return NULL;
    return out;
}

static PyObject *lift(const entry_t *e, int i, void *ctx, const val_t *v) {
    switch (e->argk[i]) {
    case A_BORROW: return lift_handle(ctx, v, 0);
    case A_OWN: return lift_handle(ctx, v, 1);
    case A_STRING: return PyUnicode_DecodeUTF8((const char *)(uintptr_t)v->p1, (Py_ssize_t)v->p0, "strict");
    case A_LATIN1: return utf8_latin1_to_bytes((const unsigned char *)(uintptr_t)v->p1, (size_t)v->p0);
    case A_BYTES: {
        /* list<u8>: one 32-byte val per byte, the byte at offset 8 of each. */
        size_t n = (size_t)v->p0;
        const unsigned char *src = (const unsigned char *)(uintptr_t)v->p1;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (out == NULL) return NULL;
        unsigned char *d = (unsigned char *)PyBytes_AS_STRING(out);
        for (size_t k = 0; k < n; k++) d[k] = src[k * sizeof(val_t) + 8];
        return out;
    }
    case A_U32: return PyLong_FromUnsignedLong((uint32_t)v->p0);
    case A_U64: return PyLong_FromUnsignedLongLong(v->p0);
    case A_S32: return PyLong_FromLong((int32_t)(uint32_t)v->p0);
    case A_S64: return PyLong_FromLongLong((int64_t)v->p0);
    case A_BOOL: return PyBool_FromLong((long)(v->p0 & 0xFF));
    default: {
        PyObject *c = PyLong_FromVoidPtr(ctx);
        PyObject *a = PyLong_FromVoidPtr((void *)v);
        PyObject *r = (c && a) ? PyObject_CallFunctionObjArgs(e->argfb[i], c, a, NULL) : NULL;
        Py_XDECREF(c);
        Py_XDECREF(a);
        return r;
    }
    }
}

/* ---- lowering ------------------------------------------------------------------------------ */

static int lower_own(void *ctx, PyObject *obj, uint32_t type, val_t *out) {
    if (cur_table == NULL) {
        PyErr_SetString(error_type, "host call outside of a guest invocation");
        return -1;
    }
    PyObject *r = PyObject_CallMethodOneArg(cur_table, str_add, obj);
    if (r == NULL) return -1;
    unsigned long rep = PyLong_AsUnsignedLong(r);
    Py_DECREF(r);
    if (rep == (unsigned long)-1 && PyErr_Occurred()) return -1;
    void *host = host_new(true, (uint32_t)rep, type);
    void *any = NULL;
    void *err = host_to_any(ctx, host, &any);
    host_delete(host);
    if (err) {
        error_delete(err);
        PyErr_SetString(error_type, "cannot create a resource handle");
        return -1;
    }
    out->kind = K_RESOURCE;
    out->p0 = (uint64_t)(uintptr_t)any;
    return 0;
}

/* bytes -> the UTF-8 of their latin-1 code points, in a wasm_byte_vec_t at `vec`. */
static int bytes_to_utf8_latin1(PyObject *b, void *vec) {
    char *str;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(b, &str, &len) < 0) return -1;
    const unsigned char *s = (const unsigned char *)str;
    size_t n = (size_t)len, high = 0;
    for (size_t i = 0; i < n; i++) high += s[i] >> 7;
    byte_vec_new_uninit(vec, n + high);
    unsigned char *d = (unsigned char *)(uintptr_t)((uint64_t *)vec)[1];
    if (!high) {
        if (n) memcpy(d, s, n);
        return 0;
    }
    size_t i = 0, j = 0;
    /* Branch-free: always write two bytes, advance by one or two. The second write stays inside
     * the buffer while at least one more output byte follows; the last byte is done apart. */
    for (; i + 1 < n; i++) {
        unsigned c = s[i], hi = c >> 7, mask = 0u - hi;
        d[j] = (unsigned char)((c & ~mask) | ((0xC0 | (c >> 6)) & mask));
        d[j + 1] = (unsigned char)(0x80 | (c & 0x3F));
        j += 1 + hi;
    }
    if (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            d[j] = (unsigned char)c;
        } else {
            d[j] = (unsigned char)(0xC0 | (c >> 6));
            d[j + 1] = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    return 0;
}

/* ("ok", payload) -> the payload (borrowed), or NULL when the value has another shape. */
static PyObject *ok_payload(PyObject *value) {
    if (!PyTuple_CheckExact(value) || PyTuple_GET_SIZE(value) != 2) return NULL;
    PyObject *tag = PyTuple_GET_ITEM(value, 0);
    if (!PyUnicode_Check(tag) || PyUnicode_CompareWithASCIIString(tag, "ok") != 0) return NULL;
    return PyTuple_GET_ITEM(value, 1);
}

static int set_result_ok(val_t *out, val_t *payload) {
    out->kind = K_RESULT;
    out->p0 = 1; /* is_ok, padding zeroed */
    out->p1 = (uint64_t)(uintptr_t)(payload ? val_new(payload) : NULL);
    return 0;
}

static int lower_py(const entry_t *e, void *ctx, PyObject *value, val_t *out) {
    PyObject *c = PyLong_FromVoidPtr(ctx);
    PyObject *a = PyLong_FromVoidPtr((void *)out);
    PyObject *r = (c && a) ? PyObject_CallFunctionObjArgs(e->resfb, c, value, a, NULL) : NULL;
    Py_XDECREF(c);
    Py_XDECREF(a);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static int lower(const entry_t *e, void *ctx, PyObject *value, val_t *out) {
    PyObject *p;
    val_t tmp;
    switch (e->resk) {
    case R_OWN: return lower_own(ctx, value, e->restype, out);
    case R_RESULT_UNIT:
        if ((p = ok_payload(value)) != NULL && p == Py_None) return set_result_ok(out, NULL);
        break;
    case R_RESULT_OWN:
        if ((p = ok_payload(value)) != NULL && p != Py_None) {
            memset(&tmp, 0, sizeof tmp);
            if (lower_own(ctx, p, e->restype, &tmp) < 0) return -1;
            return set_result_ok(out, &tmp);
        }
        break;
    case R_RESULT_LATIN1:
        if ((p = ok_payload(value)) != NULL && PyBytes_Check(p)) {
            memset(&tmp, 0, sizeof tmp);
            tmp.kind = K_STRING;
            if (bytes_to_utf8_latin1(p, &tmp.p0) < 0) return -1;
            return set_result_ok(out, &tmp);
        }
        break;
    case R_U32:
    case R_U64:
    case R_S32:
    case R_S64: {
        long long x = PyLong_AsLongLong(value);
        if (x == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            break; /* out of range for signed: let the Python codec decide */
        }
        out->kind = e->resk == R_U32 ? K_U32 : e->resk == R_U64 ? K_U64 : e->resk == R_S32 ? K_S32 : K_S64;
        out->p0 = e->resk == R_U32 ? (uint64_t)(uint32_t)x : e->resk == R_S32 ? (uint64_t)(uint32_t)(int32_t)x
                                                                              : (uint64_t)x;
        return 0;
    }
    case R_BOOL: {
        int t = PyObject_IsTrue(value);
        if (t < 0) return -1;
        out->kind = K_BOOL;
        out->p0 = (uint64_t)t;
        return 0;
    }
    case R_STRING:
        if (PyUnicode_Check(value)) {
            Py_ssize_t n;
            const char *s = PyUnicode_AsUTF8AndSize(value, &n);
            if (s == NULL) return -1;
            out->kind = K_STRING;
            byte_vec_new_uninit(&out->p0, (size_t)n);
            if (n) memcpy((void *)(uintptr_t)out->p1, s, (size_t)n);
            return 0;
        }
        break;
    default: break;
    }
    return lower_py(e, ctx, value, out);
}

/* ---- the callback ---------------------------------------------------------------------------- */

static void *fail_current(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) PyException_SetTraceback(value, tb);
    PyObject *r = PyObject_CallOneArg(fail_fn, value ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    void *err = NULL;
    if (r != NULL) {
        err = PyLong_AsVoidPtr(r);
        Py_DECREF(r);
    }
    PyErr_Clear();
    return err;
}

/* Binary-compatible with wasmtime_component_func_callback_t. */
static void *trampoline(void *data, void *ctx, const void *ty, val_t *args, size_t nargs, val_t *results,
                        size_t nresults) {
    (void)ty;
    (void)nresults;
    PyGILState_STATE gil = PyGILState_Ensure();
    void *err = NULL;
    const entry_t *e = entries[(uintptr_t)data];
    PyObject *argv[MAX_ARGS];
    int n = 0;
    if ((size_t)e->nargs != nargs) {
        PyErr_SetString(error_type, "host function called with an unexpected number of arguments");
        goto fail;
    }
    for (; n < e->nargs; n++) {
        argv[n] = lift(e, n, ctx, &args[n]);
        if (argv[n] == NULL) goto fail;
    }
    PyObject *res = PyObject_Vectorcall(e->fn, argv, (size_t)n, NULL);
    for (int i = 0; i < n; i++) Py_DECREF(argv[i]);
    n = 0;
    if (res == NULL) goto fail;
    if (e->resk != R_NONE && lower(e, ctx, res, results) < 0) {
        Py_DECREF(res);
        goto fail;
    }
    Py_DECREF(res);
    PyGILState_Release(gil);
    return NULL;
fail:
    for (int i = 0; i < n; i++) Py_DECREF(argv[i]);
    err = fail_current();
    PyGILState_Release(gil);
    return err;
}

/* ---- module functions ------------------------------------------------------------------------ */

static PyObject *py_init(PyObject *self, PyObject *args) {
    unsigned long long a[8];
    PyObject *fail, *etype;
    if (!PyArg_ParseTuple(args, "(KKKKKKKK)OO", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &fail,
                          &etype))
        return NULL;
    any_to_host = (any_to_host_t)(uintptr_t)a[0];
    host_rep = (host_rep_t)(uintptr_t)a[1];
    host_delete = (host_delete_t)(uintptr_t)a[2];
    host_new = (host_new_t)(uintptr_t)a[3];
    host_to_any = (host_to_any_t)(uintptr_t)a[4];
    byte_vec_new_uninit = (byte_vec_new_uninit_t)(uintptr_t)a[5];
    val_new = (val_new_t)(uintptr_t)a[6];
    error_delete = (error_delete_t)(uintptr_t)a[7];
    Py_XSETREF(fail_fn, Py_NewRef(fail));
    Py_XSETREF(error_type, Py_NewRef(etype));
    Py_RETURN_NONE;
}

static PyObject *py_register(PyObject *self, PyObject *args) {
    PyObject *fn, *argfb, *resfb;
    const char *kinds;
    Py_ssize_t nk;
    int resk;
    unsigned long restype;
    if (!PyArg_ParseTuple(args, "Oy#O!ikO", &fn, &kinds, &nk, &PyTuple_Type, &argfb, &resk, &restype, &resfb))
        return NULL;
    if (nk > MAX_ARGS || PyTuple_GET_SIZE(argfb) != nk) {
        PyErr_SetString(PyExc_ValueError, "too many parameters, or fallbacks do not match kinds");
        return NULL;
    }
    if (fail_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "init() first");
        return NULL;
    }
    entry_t *e = PyMem_Calloc(1, sizeof *e);
    if (e == NULL) return PyErr_NoMemory();
    if (n_free == 0 && n_entries == cap_entries) {
        Py_ssize_t cap = cap_entries ? cap_entries * 2 : 256;
        entry_t **grown = PyMem_Realloc(entries, (size_t)cap * sizeof *entries);
        if (grown == NULL) {
            PyMem_Free(e);
            return PyErr_NoMemory();
        }
        entries = grown;
        cap_entries = cap;
    }
    e->fn = Py_NewRef(fn);
    e->nargs = (int)nk;
    for (Py_ssize_t i = 0; i < nk; i++) {
        e->argk[i] = (uint8_t)kinds[i];
        e->argfb[i] = Py_NewRef(PyTuple_GET_ITEM(argfb, i));
    }
    e->resk = resk;
    e->restype = (uint32_t)restype;
    e->resfb = Py_NewRef(resfb);
    Py_ssize_t index = n_free ? free_idx[--n_free] : n_entries++;
    entries[index] = e;
    return PyLong_FromSsize_t(index);
}

/* wasmtime calls this when the function's last user is gone (its linker and every instance made
 * with it): the entry's Python objects are released and its index reused. */
static void finalizer(void *data) {
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_ssize_t index = (Py_ssize_t)(uintptr_t)data;
    entry_t *e = index < n_entries ? entries[index] : NULL;
    if (e != NULL) {
        entries[index] = NULL;
        Py_XDECREF(e->fn);
        for (int i = 0; i < e->nargs; i++) Py_XDECREF(e->argfb[i]);
        Py_XDECREF(e->resfb);
        PyMem_Free(e);
        if (n_free == cap_free) {
            Py_ssize_t cap = cap_free ? cap_free * 2 : 256;
            Py_ssize_t *grown = PyMem_Realloc(free_idx, (size_t)cap * sizeof *free_idx);
            if (grown != NULL) {
                free_idx = grown;
                cap_free = cap;
            }
        }
        if (n_free < cap_free) free_idx[n_free++] = index;  /* else: the index is simply not reused */
    }
    PyGILState_Release(gil);
}

static PyObject *py_set_table(PyObject *self, PyObject *args) {
    PyObject *table, *objects;
    if (!PyArg_ParseTuple(args, "OO", &table, &objects)) return NULL;
    if (table == Py_None) {
        cur_table = NULL;
        cur_objects = NULL;
    } else {
        if (!PyDict_Check(objects)) {
            PyErr_SetString(PyExc_TypeError, "objects must be a dict");
            return NULL;
        }
        cur_table = table;
        cur_objects = objects;
    }
    Py_RETURN_NONE;
}

static PyObject *py_trampoline_address(PyObject *self, PyObject *unused) {
    return PyLong_FromVoidPtr((void *)trampoline);
}

static PyObject *py_finalizer_address(PyObject *self, PyObject *unused) {
    return PyLong_FromVoidPtr((void *)finalizer);
}

static PyMethodDef methods[] = {
    {"init", py_init, METH_VARARGS, "init(c_function_addresses, fail, error_type)"},
    {"register", py_register, METH_VARARGS, "register(fn, kinds, fallbacks, result_kind, result_type, lower)"},
    {"set_table", py_set_table, METH_VARARGS, "set_table(table, objects): the current store's table"},
    {"trampoline_address", py_trampoline_address, METH_NOARGS, "address of the C callback"},
    {"finalizer_address", py_finalizer_address, METH_NOARGS, "address of the C entry finalizer"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fasthost", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fasthost(void) {
    str_add = PyUnicode_InternFromString("add");
    if (str_add == NULL) return NULL;
    return PyModule_Create(&module);
}
