;; Imports wasmfleet:linktest/counters@1.0.0 (a resource-carrying interface) from another component.
(module
  (import "cm32p2|wasmfleet:linktest/counters@1" "make" (func $make (result i32)))
  (import "cm32p2|wasmfleet:linktest/counters@1" "counter_drop" (func $drop (param i32)))
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/ping@1|ping") (param i32) (result i32)
    (call $drop (call $make))
    (local.get 0))
  (func (export "cm32p2_initialize")))
