;; Exports wasmfleet:linktest/calc@1.0.0: double(x) = 2x (a library component, no imports).
(module
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/calc@1|double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2)))
  (func (export "cm32p2_initialize")))
