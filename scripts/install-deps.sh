#!/usr/bin/env bash
# Installs the system libraries tuss-codec builds against (Debian 12). Idempotent: does nothing when all are present.
set -euo pipefail
packages=(pkg-config libopenblas-dev libfftw3-dev libsndfile1-dev libopus-dev libogg-dev libsoxr-dev zlib1g-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
