;; A valid component with no exports at all: it cannot serve HTTP.
(module
  (memory (export "cm32p2_memory") 1))
