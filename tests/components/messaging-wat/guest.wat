;; A wasmcloud:messaging@0.2.0 handler written by hand (canonical ABI, no toolchain):
;;   body starting "trap"  -> traps (unreachable)
;;   body starting "spin"  -> loops until the host's deadline interrupts it
;;   with a reply-to       -> publishes the body upper-cased (ASCII) to the reply subject
;;   otherwise             -> publishes the body unchanged to subject "handled"
;; handle-message returns publish's own result. Memory is a bump allocator reset after each call
;; (cabi_post), so a pooled instance does not grow.
(module
  (import "wasmcloud:messaging/consumer@0.2.0" "publish"
    (func $publish (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "handled")

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

  (func (export "wasmcloud:messaging/handler@0.2.0#handle-message")
    (param $sp i32) (param $sl i32) (param $bp i32) (param $bl i32)
    (param $has_reply i32) (param $rp i32) (param $rl i32) (result i32)
    (local $i i32) (local $c i32) (local $head i32)
    (if (i32.ge_u (local.get $bl) (i32.const 4))
      (then
        (local.set $head (i32.load (local.get $bp)))
        (if (i32.eq (local.get $head) (i32.const 0x70617274)) (then unreachable))      ;; "trap"
        (if (i32.eq (local.get $head) (i32.const 0x6e697073)) (then (loop $forever (br $forever))))))  ;; "spin"
    (if (local.get $has_reply)
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $bl)))
            (local.set $c (i32.load8_u (i32.add (local.get $bp) (local.get $i))))
            (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
              (then (i32.store8 (i32.add (local.get $bp) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
        (call $publish (local.get $rp) (local.get $rl) (local.get $bp) (local.get $bl)
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 32)))
      (else
        (call $publish (i32.const 16) (i32.const 7) (local.get $bp) (local.get $bl)
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 32))))
    (i32.const 32))

  (func (export "cabi_post_wasmcloud:messaging/handler@0.2.0#handle-message") (param i32)
    (global.set $heap (i32.const 1024)))
)
