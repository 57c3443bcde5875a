#!/usr/bin/env bash
# The embedded API server generates its self-signed TLS material with the openssl CLI.
set -euo pipefail
if ! command -v openssl >/dev/null 2>&1; then
  apt-get install -y -q openssl >/dev/null
fi
