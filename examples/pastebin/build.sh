#!/usr/bin/env sh
# Builds pastebin.wasm with componentize-py (pip install componentize-py, or the test extras), about
# 25 s. Usage: build.sh [output-dir] (default: this directory).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "${1:-$here}"
out=$(cd "${1:-$here}" && pwd)
CPY=${COMPONENTIZE_PY:-componentize-py}
# Without VIRTUAL_ENV, componentize-py bundles only the app directory (not the virtualenv).
unset VIRTUAL_ENV
(cd "$here/app" && "$CPY" -d "$here/wit" -w wasmfleet:pastebin-example/pastebin componentize app \
   -o "$out/pastebin.wasm")
echo "built $out/pastebin.wasm"
