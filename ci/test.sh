#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Each step says the time and the free disk: a CI machine's disk is not promised
# (one filled up in the fuzz step), and the log should show where it went.
free_gb() { df -P --block-size=1G . | awk 'NR==2 {print $4}'; }
step() { echo; echo "== $* ($(( $(date +%s) - start )) s, $(free_gb) GB free, target $(du -sh target 2>/dev/null | cut -f1))"; }
# A one-shot build gains nothing from incremental caches (GBs under target/debug/incremental).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "dependencies"
ci/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
# `opus` (Opus audio, libopus-dev from install-deps.sh) is off by default so
# that `cargo run` builds on a machine without it; everything here has it on.
F=(--features pinholed/opus)
cargo clippy --workspace --all-targets --locked "${F[@]}" -- -D warnings

step "cargo doc (broken links and stray HTML in doc comments are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked "${F[@]}"

step "cargo test"
cargo test --workspace --locked "${F[@]}"

step "fuzz smoke (every cargo-fuzz target, briefly)"
FUZZ_SECONDS=10 ci/fuzz-smoke.sh
# The fuzz builds (ASan, their own target dir) serve no later step: on a machine
# short of disk they go before the image build needs its few GB.
if [ "$(free_gb)" -lt 40 ]; then rm -rf target/fuzz; fi

step "flash.sh (tests/flash: file and loop-device targets, refusals)"
tests/flash/test.sh

step "debug binaries for the browser, latency and OTA tests"
# `cargo test` built their dependencies (optimised: profile.dev.package."*"); the daemon's own
# code unoptimised costs ~20 % more CPU on the test pattern (24.8 vs 20.5 % of a core), while an
# x86 release build from scratch took ~6 min of this run. The release profile is still built
# and tested: the static aarch64 binary in the image below.
# (--workspace: the same features as `cargo test --workspace`, so no dependency builds again.)
cargo build --locked --workspace --bins "${F[@]}"
export OTA_TOOL="$PWD/target/debug/pinhole-bundle" PINHOLE_BUNDLE="$PWD/target/debug/pinhole-bundle"

step "browser tests (headless chromium)"
PINHOLED="$PWD/target/debug/pinholed" tests/browser/run.sh

step "latency smoke (bench/latency: every probe produces numbers)"
bench/latency/run.sh --smoke

step "system test: cross build, qemu-arm64 image, boot in QEMU (tests/qemu); the Pi images built and checked"
# The Pi boards cannot boot here; their images are built and their contents checked
# (~2.3 min each quiet, the apt cache shared). PI_BOARDS="" skips them.
PI_BOARDS=${PI_BOARDS-rpi3 rpi4 rpi5} ci/image-test.sh

step "OTA quick test in QEMU: A→B with commit, a refused upload, 3 power cuts (ci/ota-test.sh)"
ci/ota-test.sh --quick --reuse-rootfs

step "done in $(( $(date +%s) - start )) s"
