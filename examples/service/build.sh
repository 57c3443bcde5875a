#!/usr/bin/env sh
# Builds service.wasm and front.wasm here from service/ and front/ with componentize-py (the test
# extras), through tests/components/build.py (cached by a hash of the sources; ~25-60 s each at first).
set -eu
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
cp "$("$PY" ../../tests/components/build.py service-example)" service.wasm
cp "$("$PY" ../../tests/components/build.py service-example-front)" front.wasm
echo "built $(pwd)/service.wasm and $(pwd)/front.wasm"
