;; An HTTP front that calls wasmfleet:linktest/calc@1.0.0 (exported by link-calc-wat, another
;; component of the same workload). The first character after "/" decides:
;;   /        200 "42": one call of double(21)
;;   /0...    200 "1": no call (the request's cost without crossing)
;;   /1...    200 "2": one call of double(1)
;;   /h...    200 "65535": 100 calls of double, chained (x = (double(x) + 1) & 0xffff, from 1)
;;   /l...    200 "65535": the same 100 steps done here
;;   /t...    calls double(999), which traps in the other component
;;   /i...    calls double(998), which never returns (the request's deadline stops it), without calling the other component
;; The body is the final value in decimal.
(module
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
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $out_drop (param i32)))
  (import "cm32p2|wasmfleet:linktest/calc@1" "double" (func $double (param i32) (result i32)))

  (memory (export "cm32p2_memory") 1)
  (global $heap (mut i32) (i32.const 8192))

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

  ;; Writes `v` in decimal ending at 600; returns the start (the digits run to 600).
  (func $itoa (param $v i32) (result i32)
    (local $p i32)
    (local.set $p (i32.const 600))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $v)))
    (local.get $p))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $req i32) (param $out i32)
    (local $c i32) (local $v i32) (local $i i32) (local $resp i32) (local $body i32) (local $stream i32)
    (local $start i32)
    (global.set $heap (i32.const 8192))
    (call $path (local.get $req) (i32.const 16))
    (if (i32.and (i32.load8_u (i32.const 16)) (i32.gt_u (i32.load (i32.const 24)) (i32.const 1)))
      (then (local.set $c (i32.load8_u (i32.add (i32.load (i32.const 20)) (i32.const 1))))))
    (call $incoming_request_drop (local.get $req))
    (local.set $v (i32.const 1))
    (if (i32.eq (local.get $c) (i32.const 0x31))            ;; '1'
      (then (local.set $v (call $double (i32.const 1))))
    (else (if (i32.eq (local.get $c) (i32.const 0x68))      ;; 'h'
      (then
        (loop $calls
          (local.set $v (i32.and (i32.add (call $double (local.get $v)) (i32.const 1)) (i32.const 0xffff)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $calls (i32.lt_u (local.get $i) (i32.const 100)))))
    (else (if (i32.eq (local.get $c) (i32.const 0x6c))      ;; 'l'
      (then
        (loop $local
          (local.set $v (i32.and (i32.add (i32.mul (local.get $v) (i32.const 2)) (i32.const 1)) (i32.const 0xffff)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $local (i32.lt_u (local.get $i) (i32.const 100)))))
    (else (if (i32.eq (local.get $c) (i32.const 0x74))      ;; 't'
      (then (local.set $v (call $double (i32.const 999))))
    (else (if (i32.eq (local.get $c) (i32.const 0x69))      ;; 'i'
      (then (local.set $v (call $double (i32.const 998))))
    (else (if (i32.ne (local.get $c) (i32.const 0x30))      ;; not '0': the default, double(21)
      (then (local.set $v (call $double (i32.const 21)))))))))))))))
    (local.set $start (call $itoa (local.get $v)))
    (local.set $resp (call $resp_new (call $fields_new)))
    (call $resp_body (local.get $resp) (i32.const 32))
    (local.set $body (i32.load (i32.const 36)))
    (call $body_write (local.get $body) (i32.const 32))
    (local.set $stream (i32.load (i32.const 36)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    ;; Written from an aligned copy: the host may lower stream bytes as a latin-1/UTF-16 string,
    ;; whose pointer must be 2-aligned.
    (memory.copy (i32.const 1024) (local.get $start) (i32.sub (i32.const 600) (local.get $start)))
    (call $write_flush (local.get $stream) (i32.const 1024) (i32.sub (i32.const 600) (local.get $start))
      (i32.const 32))
    (call $out_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 32))))
