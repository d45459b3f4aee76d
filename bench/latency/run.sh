#!/usr/bin/env bash
# Source-to-screen latency in a real browser: pinhole's players vs the seeds' pipelines.
# Usage: bench/latency/run.sh [--smoke] [--quick] [bench.mjs options…]
#   (no flag)  every probe 30 s + the 5-minute MSE/WebCodecs/paced runs (~22 min); writes the
#              "Latency" section of bench/README.md and bench/results/latency.{json,md,png}
#   --quick    the same without the 5-minute runs (~6 min)
#   --smoke    ~45 s, for CI: every probe must produce numbers (no timing assertions);
#              writes to $TMPDIR/pinhole-latency-smoke/ only
# Needs: cargo, node >= 20, /usr/bin/chromium, ffmpeg, nginx, websockify, gnuplot (the Debian
# packages are installed when missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/../.."

. ci/lib/need.sh
need latency websockify:websockify gnuplot:gnuplot-nox nginx:nginx-light ffmpeg:ffmpeg \
  "${CHROMIUM:-/usr/bin/chromium}:chromium"
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund)

cargo build --release --locked -p pinholed -p pinhole-bench --features pinholed/opus --bin pinholed --bin testsrc 2>&1 | grep -v '^\s*\(Compiling\|Finished\)' || true
[ -x target/release/pinholed ] && [ -x target/release/testsrc ] || { echo "latency: build failed" >&2; exit 1; }

# Node 20 has WebSocket behind a flag (22+ has it anyway).
ws_flag=()
node --experimental-websocket -e '' 2>/dev/null && ws_flag=(--experimental-websocket)
PINHOLED="$PWD/target/release/pinholed" exec node "${ws_flag[@]}" --no-warnings bench/latency/bench.mjs "$@"
