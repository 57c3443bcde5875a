;; A wasi:http guest that answers without ever creating a response body, as some toolchains do:
;; response-outparam.set(ok(response)) with status 204 (or 200 for paths starting "/2"), and no call
;; to outgoing-response.body. The host must serve an empty body, not an error.
(module
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response"
    (func $resp_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.set-status-code"
    (func $resp_status (param i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.path-with-query"
    (func $path (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $request_drop (param i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (func (export "cm32p2_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $at) (local.get 3)))
    (local.get $at))
  (func (export "cm32p2_initialize"))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $resp i32) (local $status i32)
    (global.set $heap (i32.const 4096))
    ;; path-with-query -> option<string> at 16: tag at 16, (ptr, len) at 20, 24
    (call $path (local.get $req) (i32.const 16))
    (local.set $status (i32.const 204))
    (if (i32.and (i32.load8_u (i32.const 16)) (i32.ge_u (i32.load (i32.const 24)) (i32.const 2)))
      (then (if (i32.eq (i32.load8_u (i32.add (i32.load (i32.const 20)) (i32.const 1))) (i32.const 50))
        (then (local.set $status (i32.const 200))))))
    (local.set $resp (call $resp_new (call $fields_new)))
    (drop (call $resp_status (local.get $resp) (local.get $status)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $request_drop (local.get $req)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
)
