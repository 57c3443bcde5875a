#!/usr/bin/env sh
# Builds publisher.wasm and transformer.wasm with componentize-py (pip install componentize-py, or
# the test extras), about 25 s each. Usage: build.sh [output-dir] (default: this directory).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "${1:-$here}"
out=$(cd "${1:-$here}" && pwd)
CPY=${COMPONENTIZE_PY:-componentize-py}
# Without VIRTUAL_ENV, componentize-py bundles only the app directory (not the virtualenv).
unset VIRTUAL_ENV
for world in publisher transformer; do
  (cd "$here/$world" && "$CPY" -d "$here/wit" -w "wasmfleet:messaging-example/$world" componentize app \
     -o "$out/$world.wasm")
  echo "built $out/$world.wasm"
done
