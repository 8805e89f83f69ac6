#!/usr/bin/env bash
# System packages the test suite drives for real: PgBouncer (transaction pooling test) and
# Chromium (browser tests).  Installs only what is missing; needs root (CI and dev machines).
set -euo pipefail
missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ -f scripts/install_browser.sh ]; then
  bash scripts/install_browser.sh
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
