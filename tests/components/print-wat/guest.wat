;; A hand-written wasi:http guest that prints (core module; `build.py` wraps it into a component).
;; Every request writes "request <path>" on stdout (three pieces: two `write`s, then
;; `blocking-write-and-flush` of the newline, so the host must join pieces into one line); a path
;; starting with /w also writes "warning <path>" on stderr. The answer is 200 "printed\n".
(module
  (import "cm32p2|wasi:cli/stdout@0.2" "get-stdout" (func $get_stdout (result i32)))
  (import "cm32p2|wasi:cli/stderr@0.2" "get-stderr" (func $get_stderr (result i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.write"
    (func $write (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $out_drop (param i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.path-with-query"
    (func $path (param i32 i32)))
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
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $incoming_request_drop (param i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))

  ;; retptr scratch area at 16..64; constant strings from 256
  (data (i32.const 256) "request ")    ;; 8 bytes
  (data (i32.const 272) "warning ")    ;; 8 bytes
  (data (i32.const 288) "\n")          ;; 1 byte
  (data (i32.const 304) "printed\n")   ;; 8 bytes

  (func (export "cm32p2_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get 3) (i32.const 65536)) (i32.const 1))))))
    (local.get $ptr))

  (func (export "cm32p2_initialize"))

  ;; Writes `prefix` (8 bytes at $prefix), the path, then a newline to `stream`, and drops it.
  (func $say (param $stream i32) (param $prefix i32) (param $path i32) (param $len i32)
    (call $write (local.get $stream) (local.get $prefix) (i32.const 8) (i32.const 48))
    (call $write (local.get $stream) (local.get $path) (local.get $len) (i32.const 48))
    (call $write_flush (local.get $stream) (i32.const 288) (i32.const 1) (i32.const 48))
    (call $out_drop (local.get $stream)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $p i32) (local $n i32) (local $resp i32) (local $body i32) (local $stream i32)
    (global.set $heap (i32.const 8192))
    ;; path-with-query -> option<string> at 16: tag, ptr, len
    (call $path (local.get $req) (i32.const 16))
    (if (i32.load8_u (i32.const 16))
      (then (local.set $p (i32.load (i32.const 20)))
            (local.set $n (i32.load (i32.const 24)))))
    (call $say (call $get_stdout) (i32.const 256) (local.get $p) (local.get $n))
    (if (i32.and (i32.gt_u (local.get $n) (i32.const 1))
                 (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.const 1))) (i32.const 119)))  ;; 'w'
      (then (call $say (call $get_stderr) (i32.const 272) (local.get $p) (local.get $n))))

    (local.set $resp (call $resp_new (call $fields_new)))
    (call $resp_body (local.get $resp) (i32.const 16))
    (local.set $body (i32.load (i32.const 20)))
    (call $body_write (local.get $body) (i32.const 16))
    (local.set $stream (i32.load (i32.const 20)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write_flush (local.get $stream) (i32.const 304) (i32.const 8) (i32.const 16))
    (call $out_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16))
    (call $incoming_request_drop (local.get $req)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
)
