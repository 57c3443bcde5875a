;; Imports acme:widgets/gadget (which no host implements) and exports an incoming-handler that
;; calls it. Serving it must fail at prepare time with a one-line "does not implement" error.
(module
  (import "cm32p2|acme:widgets/gadget@1" "spin" (func $spin (result i32)))
  (memory (export "cm32p2_memory") 1)
  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param i32 i32)
    (drop (call $spin)))
  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle_post"))
  (func (export "cm32p2_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "cm32p2_initialize")))
