#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "dependencies"
ci/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (broken links and stray HTML in doc comments are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "cargo test"
cargo test --workspace --locked

step "fuzz smoke (every cargo-fuzz target, briefly)"
FUZZ_SECONDS=10 ci/fuzz-smoke.sh

step "flash.sh (tests/flash: file and loop-device targets, refusals)"
tests/flash/test.sh

step "release build"
cargo build --release --locked -p pinholed -p pinhole-ota

step "browser tests (headless chromium)"
PINHOLED="$PWD/target/release/pinholed" tests/browser/run.sh

step "latency smoke (bench/latency: every probe produces numbers)"
bench/latency/run.sh --smoke

step "system test: cross build, qemu-arm64 image, boot in QEMU (tests/qemu)"
ci/image-test.sh

step "OTA quick test in QEMU: A→B with commit, a refused upload, 3 power cuts (ci/ota-test.sh)"
ci/ota-test.sh --quick --reuse-rootfs

step "done in $(( $(date +%s) - start )) s"
