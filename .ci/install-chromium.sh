#!/bin/sh
# Install Debian's headless-capable chromium for the report's browser tests (pytest -m browser).
# Idempotent: returns at once when a chromium binary is already on PATH.
set -eu

for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "chromium present: $(command -v "$name")"
        exit 0
    fi
done

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-chromium: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "chromium installed: $(command -v chromium)"
