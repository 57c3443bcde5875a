;; Exports wasmfleet:linktest/calc@1.0.0: double(x) = 2x (a library component, no imports);
;; double(999) traps (unreachable) and double(998) never returns: the tests of a trap and of the
;; request deadline inside a linked component.
(module
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasmfleet:linktest/calc@1|double") (param i32) (result i32)
    (if (i32.eq (local.get 0) (i32.const 999)) (then unreachable))
    (if (i32.eq (local.get 0) (i32.const 998)) (then (loop $forever (br $forever))))
    (i32.mul (local.get 0) (i32.const 2)))
  (func (export "cm32p2_initialize")))
