#!/usr/bin/env bash
# Install the headless browser the e2e tests drive (Debian's chromium), only when missing.
# Idempotent: a second run does nothing but say so. Playwright never downloads its own
# browsers here; the tests launch /usr/bin/chromium via executable_path.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "install_browser: chromium already installed ($(command -v chromium)); nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser: chromium is missing and this is not root (no sudo)" >&2
        echo "install_browser: run 'apt-get install chromium' as root, or skip the e2e tests" >&2
        exit 1
    fi
fi

echo "install_browser: chromium missing; installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "install_browser: installed $(command -v chromium): $(chromium --version 2>/dev/null || true)"
