#!/usr/bin/env bash
# Runs every fuzz target of every fuzz crate briefly (default 20 s each,
# FUZZ_SECONDS to change): catches crashes the seeds or a short run find,
# and keeps the targets building. Long runs: see docs/security.md.
# Each target's libFuzzer -max_len is in fuzz_targets/<target>.options
# (OSS-Fuzz's format: "[libfuzzer]" then "max_len = N").
#
# It builds the way `cargo fuzz run --dev` does (cargo-fuzz 0.13's flags,
# below) without needing cargo-fuzz itself: installing it compiled ~100
# crates on every fresh CI machine (2-3 min) for a program that only sets
# these flags. The fuzz crates stay cargo-fuzz projects; long runs use it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
# cargo-fuzz 0.13 `--dev`, AddressSanitizer. --target keeps these flags off
# build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Zsanitizer=address \
-Cllvm-args=-sanitizer-coverage-stack-depth -Cdebug-assertions"
# Line tables are all AddressSanitizer's reports need; full debuginfo made this
# target dir several times larger.
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0
# One target dir for every fuzz crate: their shared dependencies (tokio,
# serde, our own crates) build once instead of once per crate. The smoke
# builds unoptimized (with debug assertions and overflow checks, stricter
# than -O), which halves the build; ten seconds of fuzzing need no speed.
tdir="$PWD/target/fuzz"
bindir="$tdir/$triple/debug"
failed=()
for dir in crates/*/fuzz; do
    [ -f "$dir/Cargo.toml" ] || continue
    # All of a crate's targets in one cargo call: they link in parallel.
    echo "== $dir: build"
    cargo +nightly build --locked --manifest-path "$dir/Cargo.toml" --target "$triple" \
        --target-dir "$tdir" --bins
    for target in $(sed -n '/^\[\[bin\]\]/,/^name/s/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml"); do
        echo "== $dir: $target (${secs} s)"
        scratch=$(mktemp -d)
        mkdir -p "$dir/corpus/$target" "$dir/artifacts/$target"
        # New inputs go to a scratch dir; the committed seeds stay as they are.
        log="$scratch.log"
        opts=()
        if [ -f "$dir/fuzz_targets/$target.options" ]; then
            max_len=$(sed -n 's/^max_len *= *//p' "$dir/fuzz_targets/$target.options")
            [ -n "$max_len" ] && opts+=("-max_len=$max_len")
        fi
        if (cd "$dir" && "$bindir/$target" -artifact_prefix="artifacts/$target/" \
                -max_total_time="$secs" -print_final_stats=1 "${opts[@]}" \
                "$scratch" "corpus/$target") >"$log" 2>&1; then
            grep -E "stat::number_of_executed_units" "$log" || true
        else
            tail -40 "$log"
            failed+=("$dir:$target")
        fi
        rm -f "$log"
        rm -rf "$scratch"
    done
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (reproducers in <crate>/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke: all targets ran ${secs} s without a crash"
