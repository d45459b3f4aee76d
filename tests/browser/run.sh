#!/bin/sh
# Run the browser tests against target/release/pinholed (or $PINHOLED).
# Needs node >= 20 and Debian's chromium (/usr/bin/chromium; apt-get install -y chromium).
set -eu
cd "$(dirname "$0")"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
exec node --test --test-concurrency=1 --test-timeout=120000 ./*.test.mjs
