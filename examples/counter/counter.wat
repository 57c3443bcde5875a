;; counter: a wasi:http component counting its requests in wasi:keyvalue, written by hand in WAT.
;; Build with ./build.sh (wasm-tools).
;;
;; Every request increments the key "hits" in two stores, opened by the identifiers "cache" and
;; "sessions" (wasi:keyvalue/atomics.increment, a big-endian u64 in the store), and answers
;;     200 "cache=<n> sessions=<m>\n"
;; or 500 "keyvalue error\n" when a store cannot be opened or incremented. Which backend each
;; identifier reaches is the workload's business: one unnamed hostInterfaces entry (deployment.yaml:
;; the host's NATS, a JetStream KV bucket per identifier), or named entries `cache` and `sessions`
;; binding different backends (examples/multi-backend.yaml: NATS and Redis).
;;
;; A core module with the canonical ABI names ("cm32p2|..."), as examples/hello/hello.wat.
(module
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]fields.append"
    (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response"
    (func $resp_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.set-status-code"
    (func $resp_status (param i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.body"
    (func $resp_body (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-body.write"
    (func $body_write (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]outgoing-body.finish"
    (func $body_finish (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $request_drop (param i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $stream_drop (param i32)))
  ;; open(identifier) -> result<bucket, error>: (string ptr, len, result ptr)
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "open" (func $kv_open (param i32 i32 i32)))
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "bucket_drop" (func $bucket_drop (param i32)))
  ;; increment(borrow<bucket>, key, delta: u64) -> result<u64, error>: (handle, key ptr, len, delta, result ptr)
  (import "cm32p2|wasi:keyvalue/atomics@0.2.0-draft" "increment"
    (func $kv_increment (param i32 i32 i32 i64 i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))

  ;; 16..63: scratch for HTTP results (result<handle>: tag at 16, handle at 20).
  ;; 64..79: open's result<bucket, error> (tag at 64, handle at 68).
  ;; 96..119: increment's result<u64, error> (tag at 96, value at 104).
  ;; 1024..1279: the response body, built backwards from 1279, then copied to 2048.
  (data (i32.const 256) "content-type")      ;; 12
  (data (i32.const 272) "text/plain")        ;; 10
  (data (i32.const 288) "cache")             ;; 5
  (data (i32.const 296) "sessions")          ;; 8
  (data (i32.const 312) "hits")              ;; 4
  (data (i32.const 320) "keyvalue error\n")  ;; 15
  (data (i32.const 336) "cache=")            ;; 6
  (data (i32.const 344) " sessions=")        ;; 10

  ;; The host allocates here only for error strings: a bump allocator, reset by every request.
  (func (export "cm32p2_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
    (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $at) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.const 1)))))
    (local.get $at))
  (func (export "cm32p2_initialize"))

  ;; Increments "hits" in the store `id`; the new count, or -1 on any keyvalue error.
  (func $count (param $id i32) (param $id_len i32) (result i64)
    (local $bucket i32) (local $n i64)
    (call $kv_open (local.get $id) (local.get $id_len) (i32.const 64))
    (if (i32.load8_u (i32.const 64)) (then (return (i64.const -1))))
    (local.set $bucket (i32.load (i32.const 68)))
    (call $kv_increment (local.get $bucket) (i32.const 312) (i32.const 4) (i64.const 1) (i32.const 96))
    (local.set $n (if (result i64) (i32.load8_u (i32.const 96))
      (then (i64.const -1)) (else (i64.load (i32.const 104)))))
    (call $bucket_drop (local.get $bucket))
    (local.get $n))

  ;; Writes `value` in decimal ending just before `end`; returns where the digits start.
  (func $digits (param $value i64) (param $end i32) (result i32)
    (loop $next
      (local.set $end (i32.sub (local.get $end) (i32.const 1)))
      (i32.store8 (local.get $end) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $value) (i64.const 10)))))
      (local.set $value (i64.div_u (local.get $value) (i64.const 10)))
      (br_if $next (i64.ne (local.get $value) (i64.const 0))))
    (local.get $end))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $cache i64) (local $sessions i64) (local $start i32) (local $len i32)
    (local $headers i32) (local $resp i32) (local $body i32) (local $stream i32)
    (global.set $heap (i32.const 8192))
    (local.set $cache (call $count (i32.const 288) (i32.const 5)))
    (local.set $sessions (call $count (i32.const 296) (i32.const 8)))
    (local.set $headers (call $fields_new))
    (call $fields_append (local.get $headers) (i32.const 256) (i32.const 12) (i32.const 272) (i32.const 10)
      (i32.const 16))
    (local.set $resp (call $resp_new (local.get $headers)))
    (if (i32.or (i64.eq (local.get $cache) (i64.const -1)) (i64.eq (local.get $sessions) (i64.const -1)))
      (then
        (drop (call $resp_status (local.get $resp) (i32.const 500)))
        (local.set $start (i32.const 320))
        (local.set $len (i32.const 15)))
      (else
        ;; "cache=<n> sessions=<m>\n", built from the end.
        (i32.store8 (i32.const 1279) (i32.const 10))
        (local.set $start (call $digits (local.get $sessions) (i32.const 1279)))
        (local.set $start (i32.sub (local.get $start) (i32.const 10)))
        (memory.copy (local.get $start) (i32.const 344) (i32.const 10))
        (local.set $start (call $digits (local.get $cache) (local.get $start)))
        (local.set $start (i32.sub (local.get $start) (i32.const 6)))
        (memory.copy (local.get $start) (i32.const 336) (i32.const 6))
        (local.set $len (i32.sub (i32.const 1280) (local.get $start)))
        ;; Moved to an even address: this host's wasmtime refuses a list<u8> at an odd one
        ;; ("string pointer not aligned to 2"), though the canonical ABI aligns list<u8> to 1.
        (memory.copy (i32.const 2048) (local.get $start) (local.get $len))
        (local.set $start (i32.const 2048))))
    (call $resp_body (local.get $resp) (i32.const 16))
    (local.set $body (i32.load (i32.const 20)))
    (call $body_write (local.get $body) (i32.const 16))
    (local.set $stream (i32.load (i32.const 20)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write_flush (local.get $stream) (local.get $start) (local.get $len) (i32.const 16))
    (call $stream_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16))
    (call $request_drop (local.get $req)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
)
