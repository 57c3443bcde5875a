#!/usr/bin/env bash
# A real OCI registry for the artifact tests and benchmarks: Debian's docker-registry (distribution
# 2.8) and htpasswd (apache2-utils) for its basic-auth mode. Idempotent and quiet.
set -euo pipefail
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi
