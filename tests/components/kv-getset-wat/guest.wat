;; A wasi:http guest doing, per request, store.open("bench"), bucket.set("k", 16 bytes) and
;; bucket.get("k"), answering 200 with the value read (or 500 "keyvalue error"). Hand-written so the
;; benchmark (bench/keyvalue_bench.py) measures the keyvalue plugin, not a language runtime's start.
(module
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
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
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "open" (func $kv_open (param i32 i32 i32)))
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "[method]bucket.set"
    (func $kv_set (param i32 i32 i32 i32 i32 i32)))
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "[method]bucket.get"
    (func $kv_get (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:keyvalue/store@0.2.0-draft" "bucket_drop" (func $bucket_drop (param i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))

  ;; 16..31 HTTP results; 64.. open's result; 96.. set's result; 128.. get's result
  ;; (tag 128, option tag 132, list ptr 136, len 140).
  (data (i32.const 256) "bench")             ;; 5
  (data (i32.const 264) "k")                 ;; 1
  (data (i32.const 272) "value-0123456789")  ;; 16
  (data (i32.const 320) "keyvalue error\n")  ;; 15

  (func (export "cm32p2_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $at) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.const 1)))))
    (local.get $at))
  (func (export "cm32p2_initialize"))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $bucket i32) (local $ok i32) (local $start i32) (local $len i32)
    (local $resp i32) (local $body i32) (local $stream i32)
    (global.set $heap (i32.const 8192))
    (call $kv_open (i32.const 256) (i32.const 5) (i32.const 64))
    (if (i32.eqz (i32.load8_u (i32.const 64)))
      (then
        (local.set $bucket (i32.load (i32.const 68)))
        (call $kv_set (local.get $bucket) (i32.const 264) (i32.const 1) (i32.const 272) (i32.const 16) (i32.const 96))
        (if (i32.eqz (i32.load8_u (i32.const 96)))
          (then
            (call $kv_get (local.get $bucket) (i32.const 264) (i32.const 1) (i32.const 128))
            (if (i32.and (i32.eqz (i32.load8_u (i32.const 128))) (i32.load8_u (i32.const 132)))
              (then
                (local.set $ok (i32.const 1))
                (local.set $start (i32.load (i32.const 136)))
                (local.set $len (i32.load (i32.const 140)))))))
        (call $bucket_drop (local.get $bucket))))
    (local.set $resp (call $resp_new (call $fields_new)))
    (if (i32.eqz (local.get $ok))
      (then
        (drop (call $resp_status (local.get $resp) (i32.const 500)))
        (local.set $start (i32.const 320))
        (local.set $len (i32.const 15))))
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
