;; hello: the smallest useful wasi:http component, written by hand in WAT so every byte is visible.
;; Every request gets 200 "hello from wasmfleet" as text/plain. Build with ./build.sh (wasm-tools).
;;
;; It is a core module using the component model's canonical ABI names ("cm32p2|..." imports and
;; exports); `wasm-tools component embed` attaches the WIT world in wit/ and `component new` wraps it
;; into a component that imports wasi:http/types and exports wasi:http/incoming-handler.
(module
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]fields.append"
    (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response"
    (func $resp_new (param i32) (result i32)))
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

  (memory (export "cm32p2_memory") 1)

  ;; 16..63: scratch for results the host writes back (result<handle> = tag at 16, handle at 20).
  (data (i32.const 256) "content-type")           ;; 12 bytes
  (data (i32.const 272) "text/plain")             ;; 10 bytes
  (data (i32.const 288) "hello from wasmfleet\n") ;; 21 bytes

  ;; The host never needs to allocate in this guest (no strings flow in), but the ABI requires it.
  (func (export "cm32p2_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "cm32p2_initialize"))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $headers i32) (local $resp i32) (local $body i32) (local $stream i32)
    (local.set $headers (call $fields_new))
    (call $fields_append (local.get $headers) (i32.const 256) (i32.const 12) (i32.const 272) (i32.const 10)
      (i32.const 16))
    (local.set $resp (call $resp_new (local.get $headers)))            ;; status defaults to 200
    (call $resp_body (local.get $resp) (i32.const 16))
    (local.set $body (i32.load (i32.const 20)))
    (call $body_write (local.get $body) (i32.const 16))
    (local.set $stream (i32.load (i32.const 20)))
    ;; response-outparam.set(out, ok(resp)): the headers go out now, the body streams after.
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write_flush (local.get $stream) (i32.const 288) (i32.const 21) (i32.const 16))
    (call $stream_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16))
    (call $request_drop (local.get $req)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
)
