"""wasmfleet: run WebAssembly workloads across a fleet of machines."""

__version__ = "0.1.0"
