#!/usr/bin/env bash
# A real Redis for the wasi:keyvalue redis backend's tests: Debian's redis-server (and redis-cli).
# Idempotent and quiet.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -q redis-server redis-tools >/dev/null
fi
