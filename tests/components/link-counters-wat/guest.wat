;; Exports wasmfleet:linktest/counters@1.0.0, an interface with a resource: the host refuses to
;; link it to another component (handles do not cross instances).
(module
  (import "cm32p2|_ex_wasmfleet:linktest/counters@1" "counter_new" (func $new (param i32) (result i32)))
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/counters@1|make") (result i32)
    (call $new (i32.const 7)))
  (func (export "cm32p2|wasmfleet:linktest/counters@1|counter_dtor") (param i32))
  (func (export "cm32p2_initialize")))
