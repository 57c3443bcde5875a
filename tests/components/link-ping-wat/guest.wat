;; Imports calc, exports ping (with link-pong-wat: a cycle the host refuses).
(module
  (import "cm32p2|wasmfleet:linktest/calc@1" "double" (func $double (param i32) (result i32)))
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/ping@1|ping") (param i32) (result i32)
    (call $double (local.get 0)))
  (func (export "cm32p2_initialize")))
