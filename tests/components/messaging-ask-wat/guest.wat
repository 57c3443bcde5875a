;; A wasmcloud:messaging@0.2.0 handler that asks another service before answering (canonical ABI,
;; no toolchain): for a message with a reply-to, it makes consumer.request on "ask.backend" with
;; the body (timeout 5 s) and publishes the reply's body to the reply-to (or the error text when the
;; request failed). It imports request, the consumer function that waits, so the host runs it on a
;; handler thread, never inline on the NATS loop (tests/integration/test_messaging.py).
(module
  (import "wasmcloud:messaging/consumer@0.2.0" "publish"
    (func $publish (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasmcloud:messaging/consumer@0.2.0" "request"
    (func $request (param i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "ask.backend")

  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
    (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1)))
                    (i32.const -1))
          (then unreachable))))
    (if (local.get $old_size)
      (then (memory.copy (local.get $p) (local.get $old) (local.get $old_size))))
    (local.get $p))

  ;; request's result<broker-message, string> at 64: tag at 64; ok: subject (68, 72), body (76, 80),
  ;; reply-to option at 84; err: the text (68, 72). publish's result at 32 is handle-message's.
  (func (export "wasmcloud:messaging/handler@0.2.0#handle-message")
    (param $sp i32) (param $sl i32) (param $bp i32) (param $bl i32)
    (param $has_reply i32) (param $rp i32) (param $rl i32) (result i32)
    (if (i32.eqz (local.get $has_reply))
      (then
        (i32.store8 (i32.const 32) (i32.const 0))
        (return (i32.const 32))))
    (call $request (i32.const 16) (i32.const 11) (local.get $bp) (local.get $bl) (i32.const 5000) (i32.const 64))
    (if (i32.eqz (i32.load8_u (i32.const 64)))
      (then
        (call $publish (local.get $rp) (local.get $rl) (i32.load (i32.const 76)) (i32.load (i32.const 80))
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 32)))
      (else
        (call $publish (local.get $rp) (local.get $rl) (i32.load (i32.const 68)) (i32.load (i32.const 72))
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 32))))
    (i32.const 32))

  (func (export "cabi_post_wasmcloud:messaging/handler@0.2.0#handle-message") (param i32)
    (global.set $heap (i32.const 1024)))
)
