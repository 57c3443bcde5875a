#!/usr/bin/env bash
# Container image builds without Docker (tests/deploy/test_image_smoke.py, scripts/build-image):
# podman and buildah (chroot isolation) and mmdebstrap for the Debian bookworm base. Idempotent, quiet.
set -euo pipefail
missing=()
for tool in podman buildah mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
