#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser tests (tests/e2e/test_dashboard.py), driven by the
# playwright package with executable_path=/usr/bin/chromium (playwright's own browser download needs
# the internet). Debian's chromium package. Idempotent and quiet.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
fi
