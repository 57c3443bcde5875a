"""WASI 0.2 implemented in Python for wasmtime-py's component linker.

One module per interface family (io, clocks, random, cli, filesystem, sockets, http). Each exposes
`INTERFACES`: interface name ("wasi:io/streams") -> `registry.Interface` (its functions by WIT
import name, and its resource names). The runtime's linker links what a component imports from
here; `registry.all_interfaces()` gathers them.
"""
