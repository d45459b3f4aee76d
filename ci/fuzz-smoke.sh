#!/usr/bin/env bash
# Runs every cargo-fuzz target of every fuzz crate briefly (default 20 s
# each, FUZZ_SECONDS to change): catches crashes the seeds or a short run
# find, and keeps the targets building. Long runs: see docs/security.md.
# Each target's libFuzzer -max_len is in fuzz_targets/<target>.options
# (OSS-Fuzz's format: "[libfuzzer]" then "max_len = N").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# One target dir for every fuzz crate: their shared dependencies (tokio,
# serde, our own crates) build once instead of once per crate. The smoke
# builds unoptimized (`--dev`: with debug assertions and overflow checks,
# stricter than -O), which halves the build; ten seconds of fuzzing need no
# speed. Long runs use -O (docs/security.md).
tdir="$PWD/target/fuzz"
failed=()
for dir in crates/*/fuzz; do
    [ -f "$dir/Cargo.toml" ] || continue
    for target in $(cd "$dir" && cargo +nightly fuzz list); do
        echo "== $dir: $target (${secs} s)"
        scratch=$(mktemp -d)
        mkdir -p "$dir/corpus/$target"
        # New inputs go to a scratch dir; the committed seeds stay as they are.
        log="$scratch.log"
        opts=()
        if [ -f "$dir/fuzz_targets/$target.options" ]; then
            max_len=$(sed -n 's/^max_len *= *//p' "$dir/fuzz_targets/$target.options")
            [ -n "$max_len" ] && opts+=("-max_len=$max_len")
        fi
        if (cd "$dir" && cargo +nightly fuzz run --dev --target-dir "$tdir" "$target" "$scratch" "corpus/$target" -- \
                -max_total_time="$secs" -print_final_stats=1 "${opts[@]}") >"$log" 2>&1; then
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
