#!/usr/bin/env bash
# Source-to-screen latency in a real browser: pinhole's players vs the seeds' pipelines.
# Usage: bench/latency/run.sh [--smoke] [--quick] [bench.mjs options…]
#   (no flag)  every probe 30 s + the 5-minute MSE/WebCodecs/paced runs (~22 min); writes the
#              "Latency" section of bench/README.md and bench/results/latency.{json,md,png}
#   --quick    the same without the 5-minute runs (~6 min)
#   --smoke    ~45 s, for CI: every probe of ours must produce numbers (no timing assertions; debug
#              build; a seed pipeline that fails twice is reported, not fatal);
#              writes to $TMPDIR/pinhole-latency-smoke/ only
# Needs: cargo, node >= 20, /usr/bin/chromium, ffmpeg, nginx, websockify, gnuplot (the Debian
# packages are installed when missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/../.."

. ci/lib/need.sh
need latency websockify:websockify gnuplot:gnuplot-nox nginx:nginx-light ffmpeg:ffmpeg \
  "${CHROMIUM:-/usr/bin/chromium}:chromium"
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund)

# The smoke checks that every probe produces numbers, not the numbers: it takes the debug
# build that `cargo test` already made (CI builds no x86 release); measurements use release.
# (The whole workspace's binaries, with `cargo test --workspace`'s features: the same dependency
# builds, none made again.)
build=(--release -p pinholed -p pinhole-bench --bin pinholed --bin testsrc)
bin=target/release
for a in "$@"; do [ "$a" = --smoke ] && build=(--workspace --bins) && bin=target/debug; done
cargo build --locked "${build[@]}" --features pinholed/opus 2>&1 | grep -v '^\s*\(Compiling\|Finished\)' || true
[ -x "$bin/pinholed" ] && [ -x "$bin/testsrc" ] || { echo "latency: build failed" >&2; exit 1; }

# Node 20 has WebSocket behind a flag (22+ has it anyway).
ws_flag=()
node --experimental-websocket -e '' 2>/dev/null && ws_flag=(--experimental-websocket)
PINHOLED="$PWD/$bin/pinholed" TESTSRC="$PWD/$bin/testsrc" exec node "${ws_flag[@]}" --no-warnings bench/latency/bench.mjs "$@"
