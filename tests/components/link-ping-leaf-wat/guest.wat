;; Exports ping (x * 3) and imports nothing: the end of a chain front -> link-pong-wat -> this one.
(module
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/ping@1|ping") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 3)))
  (func (export "cm32p2_initialize")))
