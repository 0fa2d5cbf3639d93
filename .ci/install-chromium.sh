#!/bin/sh
# Install Debian's chromium for the browser tests (pytest -m browser), which drive it through the
# Python playwright package (in the test extra) with executable_path=/usr/bin/chromium: Playwright's
# own browser download (`playwright install`) is never used.
# Idempotent: returns at once when /usr/bin/chromium (or $MECHSCOPE_CHROMIUM) exists.
set -eu

CHROMIUM="${MECHSCOPE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $CHROMIUM"
    exit 0
fi

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
