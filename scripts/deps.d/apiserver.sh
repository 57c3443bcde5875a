#!/usr/bin/env bash
# The embedded API server generates its self-signed TLS material with the openssl CLI.
set -euo pipefail
if ! command -v openssl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # A brand-new machine may have empty package lists: update only when the plain install fails.
  apt-get install -y -q openssl >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -q openssl >/dev/null; }
fi
