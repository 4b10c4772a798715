#!/usr/bin/env bash
# What the test suite needs besides Rust: headless Chromium and chromedriver
# (sealing/tests/web_ui.rs drives the web view in a real browser) and promtool
# (sealing/tests/metrics_real_pledge.rs checks /metrics with it). Installs
# Debian's packages when one is missing; does nothing when all are there.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v promtool >/dev/null || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "test-deps: installing ${missing[*]} (Debian packages)" >&2
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "test-deps: need root (or sudo) to install: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
