;; A hand-written wasi:http guest (core module; `build.py` wraps it into a component).
;; It dispatches on the first character after "/" in the request path:
;;   /       200 "hello from wat\n" with content-type and x-guest headers
;;   /s...   201 with header x-status: created
;;   /h...   200 and the request's headers echoed back as response headers
;;   /e...   200 and the request body copied into the response body (blocking-read and
;;           blocking-write-and-flush in 4 KiB pieces, which every host must accept; not
;;           blocking-splice, whose two borrowed handles wasmtime-py's C API path rejects)
;;   /t...   a trap (unreachable) before responding
;;   /l...   an infinite loop (stopped by the host's epoch deadline)
;;   /m...   a memory bomb: grows memory until refused, then traps
;;   /r...   calls wasi:random/random.get-random-u64 (granted to every component) -> "random ok"
;;   /n...   calls wasi:sockets/instance-network (granted to every component) then answers as /
;;   /a...   200 and the request's authority as the body (the Host the request was sent to, as the
;;           guest sees it; empty when the request had none)
;;   /o...   outgoing GET http://<x-target header>/up; answers the upstream's status and body, or
;;           502 when the host refuses the request (wasi:http/outgoing-handler must be granted)
(module
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]fields.append"
    (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.path-with-query"
    (func $path (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.headers"
    (func $req_headers (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.authority"
    (func $req_authority (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.consume"
    (func $consume (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-body.stream"
    (func $in_body_stream (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response"
    (func $resp_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.set-status-code"
    (func $set_status (param i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.body"
    (func $resp_body (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-body.write"
    (func $body_write (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]outgoing-body.finish"
    (func $body_finish (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-body_drop" (func $incoming_body_drop (param i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $incoming_request_drop (param i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]input-stream.blocking-read"
    (func $blocking_read (param i32 i64 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $out_drop (param i32)))
  (import "cm32p2|wasi:io/streams@0.2" "input-stream_drop" (func $in_drop (param i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]fields.get" (func $fields_get (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-request" (func $oreq_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-request.set-scheme"
    (func $set_scheme (param i32 i32 i32 i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-request.set-authority"
    (func $set_authority (param i32 i32 i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-request.set-path-with-query"
    (func $set_path (param i32 i32 i32 i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]future-incoming-response.subscribe"
    (func $fut_subscribe (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]future-incoming-response.get" (func $fut_get (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-response.status" (func $iresp_status (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-response.consume" (func $iresp_consume (param i32 i32)))
  (import "cm32p2|wasi:io/poll@0.2" "[method]pollable.block" (func $block (param i32)))
  (import "cm32p2|wasi:http/outgoing-handler@0.2" "handle" (func $out_handle (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:random/random@0.2" "get-random-u64" (func $random_u64 (result i64)))
  (import "cm32p2|wasi:sockets/instance-network@0.2" "instance-network" (func $network (result i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))

  ;; retptr scratch area at 16..64; constant strings from 256
  (data (i32.const 256) "content-type")        ;; 12 bytes
  (data (i32.const 272) "text/plain")          ;; 10 bytes
  (data (i32.const 288) "x-guest")             ;; 7 bytes
  (data (i32.const 296) "wat")                 ;; 3 bytes
  (data (i32.const 304) "hello from wat\n")    ;; 15 bytes
  (data (i32.const 320) "x-status")            ;; 8 bytes
  (data (i32.const 336) "created")             ;; 7 bytes
  (data (i32.const 352) "random ok\n")         ;; 10 bytes
  (data (i32.const 368) "x-target")            ;; 8 bytes
  (data (i32.const 384) "/up")                 ;; 3 bytes

  ;; Bump allocator with realloc semantics: a shrink keeps the block (the host lowers byte
  ;; buffers as latin-1 strings: allocate the UTF-8 length, then shrink), a growth copies.
  (func (export "cm32p2_realloc") (param $old i32) (param $old_size i32) (param $align i32)
        (param $size i32) (result i32)
    (local $ptr i32)
    (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.le_u (local.get $size) (local.get $old_size)))
      (then (return (local.get $old))))
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get $size) (i32.const 65536)) (i32.const 1))))))
    (if (local.get $old)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))

  (func (export "cm32p2_initialize"))

  ;; Sends `headers` with `status`, writes `len` bytes at `ptr` (0 = none), or splices the
  ;; request body `in_stream` (when non-zero) into the response body.
  (func $respond (param $out i32) (param $headers i32) (param $status i32)
                 (param $ptr i32) (param $len i32) (param $in_stream i32)
    (local $resp i32) (local $body i32) (local $stream i32)
    (local.set $resp (call $resp_new (local.get $headers)))
    (drop (call $set_status (local.get $resp) (local.get $status)))
    (call $resp_body (local.get $resp) (i32.const 16))
    (local.set $body (i32.load (i32.const 20)))
    (call $body_write (local.get $body) (i32.const 16))
    (local.set $stream (i32.load (i32.const 20)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (if (local.get $len)
      (then (call $write_flush (local.get $stream) (local.get $ptr) (local.get $len) (i32.const 16))))
    (if (local.get $in_stream)
      (then
        (block $done
          (loop $copy
            (global.set $heap (i32.const 8192))
            (call $blocking_read (local.get $in_stream) (i64.const 4096) (i32.const 16))
            (br_if $done (i32.load8_u (i32.const 16)))   ;; err: closed (or failed)
            (call $write_flush (local.get $stream) (i32.load (i32.const 20)) (i32.load (i32.const 24))
              (i32.const 32))
            (br $copy)))))
    (call $out_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16)))

  (func $text_headers (result i32)
    (local $h i32)
    (local.set $h (call $fields_new))
    (call $fields_append (local.get $h) (i32.const 256) (i32.const 12) (i32.const 272) (i32.const 10)
      (i32.const 16))
    (call $fields_append (local.get $h) (i32.const 288) (i32.const 7) (i32.const 296) (i32.const 3)
      (i32.const 16))
    (local.get $h))

  ;; GET http://<x-target>/up and relay the answer (status and body) to `out`.
  (func $fetch (param $req i32) (param $out i32)
    (local $lp i32) (local $oreq i32) (local $fut i32) (local $iresp i32) (local $status i32)
    (local $body i32) (local $in i32)
    (call $fields_get (call $req_headers (local.get $req)) (i32.const 368) (i32.const 8) (i32.const 16))
    (if (i32.eqz (i32.load (i32.const 20))) (then unreachable))      ;; no x-target header
    (local.set $lp (i32.load (i32.const 16)))
    (local.set $oreq (call $oreq_new (call $fields_new)))
    (drop (call $set_scheme (local.get $oreq) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
    (drop (call $set_authority (local.get $oreq) (i32.const 1) (i32.load (local.get $lp))
      (i32.load offset=4 (local.get $lp))))
    (drop (call $set_path (local.get $oreq) (i32.const 1) (i32.const 384) (i32.const 3)))
    ;; result<own<future-incoming-response>, error-code>: tag at 16, handle at 24
    (call $out_handle (local.get $oreq) (i32.const 0) (i32.const 0) (i32.const 16))
    (if (i32.load8_u (i32.const 16))
      (then (call $respond (local.get $out) (call $fields_new) (i32.const 502) (i32.const 0) (i32.const 0)
              (i32.const 0))
            (return)))
    (local.set $fut (i32.load (i32.const 24)))
    (call $block (call $fut_subscribe (local.get $fut)))
    ;; option<result<result<own<incoming-response>, error-code>>>: tags at 16, 24, 32; handle at 40
    (call $fut_get (local.get $fut) (i32.const 16))
    (if (i32.or (i32.load8_u (i32.const 24)) (i32.load8_u (i32.const 32)))
      (then (call $respond (local.get $out) (call $fields_new) (i32.const 502) (i32.const 0) (i32.const 0)
              (i32.const 0))
            (return)))
    (local.set $iresp (i32.load (i32.const 40)))
    (local.set $status (call $iresp_status (local.get $iresp)))
    (call $iresp_consume (local.get $iresp) (i32.const 16))
    (local.set $body (i32.load (i32.const 20)))
    (call $in_body_stream (local.get $body) (i32.const 16))
    (local.set $in (i32.load (i32.const 20)))
    (call $respond (local.get $out) (call $fields_new) (local.get $status) (i32.const 0) (i32.const 0)
      (local.get $in))
    (call $in_drop (local.get $in))
    (call $incoming_body_drop (local.get $body)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $c i32) (local $h i32) (local $body i32) (local $in i32)
    (global.set $heap (i32.const 8192))
    ;; path-with-query -> option<string> at 16: tag, ptr, len
    (call $path (local.get $req) (i32.const 16))
    (local.set $c (i32.const 0))
    (if (i32.and (i32.load8_u (i32.const 16)) (i32.gt_u (i32.load (i32.const 24)) (i32.const 1)))
      (then (local.set $c (i32.load8_u (i32.add (i32.load (i32.const 20)) (i32.const 1))))))

    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))            ;; 't'
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $spin (br $spin)))) ;; 'l'
    (if (i32.eq (local.get $c) (i32.const 109))                                 ;; 'm'
      (then (loop $grow
              (br_if $grow (i32.ne (memory.grow (i32.const 256)) (i32.const -1))))
            unreachable))
    (if (i32.eq (local.get $c) (i32.const 111))                                 ;; 'o'
      (then (call $fetch (local.get $req) (local.get $out))
            (return)))
    (if (i32.eq (local.get $c) (i32.const 110))                                 ;; 'n'
      (then (drop (call $network))))
    (if (i32.eq (local.get $c) (i32.const 114))                                 ;; 'r'
      (then (drop (call $random_u64))
            (call $respond (local.get $out) (call $text_headers) (i32.const 200)
              (i32.const 352) (i32.const 10) (i32.const 0))
            (call $incoming_request_drop (local.get $req))
            (return)))
    (if (i32.eq (local.get $c) (i32.const 115))                                 ;; 's'
      (then (local.set $h (call $text_headers))
            (call $fields_append (local.get $h) (i32.const 320) (i32.const 8) (i32.const 336)
              (i32.const 7) (i32.const 16))
            (call $respond (local.get $out) (local.get $h) (i32.const 201) (i32.const 0) (i32.const 0)
              (i32.const 0))
            (call $incoming_request_drop (local.get $req))
            (return)))
    (if (i32.eq (local.get $c) (i32.const 97))                                  ;; 'a'
      (then (call $req_authority (local.get $req) (i32.const 48))   ;; option<string>: tag 48, ptr 52, len 56
            (call $respond (local.get $out) (call $text_headers) (i32.const 200) (i32.load (i32.const 52))
              (i32.mul (i32.load8_u (i32.const 48)) (i32.load (i32.const 56))) (i32.const 0))
            (call $incoming_request_drop (local.get $req))
            (return)))
    (if (i32.eq (local.get $c) (i32.const 104))                                 ;; 'h'
      (then (call $respond (local.get $out) (call $req_headers (local.get $req)) (i32.const 200)
              (i32.const 0) (i32.const 0) (i32.const 0))
            (call $incoming_request_drop (local.get $req))
            (return)))
    (if (i32.eq (local.get $c) (i32.const 101))                                 ;; 'e'
      (then (call $consume (local.get $req) (i32.const 16))
            (local.set $body (i32.load (i32.const 20)))
            (call $in_body_stream (local.get $body) (i32.const 16))
            (local.set $in (i32.load (i32.const 20)))
            (call $respond (local.get $out) (call $fields_new) (i32.const 200) (i32.const 0) (i32.const 0)
              (local.get $in))
            (call $in_drop (local.get $in))
            (call $incoming_body_drop (local.get $body))
            (call $incoming_request_drop (local.get $req))
            (return)))
    (call $respond (local.get $out) (call $text_headers) (i32.const 200) (i32.const 304) (i32.const 15)
      (i32.const 0))
    (call $incoming_request_drop (local.get $req)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
)
