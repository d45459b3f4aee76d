#!/usr/bin/env bash
# What the pipe source adds: pinhole's test pattern (testsrc, 720p30, each
# frame's timestamp SEI stamped as it is written) piped into
# `pinholed --source pipe:-`; one /ws/h264 viewer (ws-latency) records
# receive time − SEI time per frame. Beside it, the same stream through the
# seed's relay (testsrc --listen → websockify → the same viewer).
# Prints one RESULT line per row and writes bench/results/pipe-latency-<date>.md.
#
# Environment: PINHOLED (binary to measure; default: this tree's release
# build), LABEL (what to call it), WARMUP (5 s), DURATION (30 s), SEED (1:
# also measure websockify), OUT (results file).
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-5}
DURATION=${DURATION:-30}
SEED=${SEED:-1}
cargo build --release -q -p pinhole-bench --bin testsrc --bin ws-latency
if [ -z "${PINHOLED:-}" ]; then
    cargo build --release -q -p pinholed --bin pinholed
    PINHOLED=target/release/pinholed
fi
LABEL=${LABEL:-"pinholed $(git rev-parse --short HEAD)"}
OUT=${OUT:-bench/results/pipe-latency-$(date -u +%F).md}
BIN=target/release

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "pipe-latency: nothing listens on port $1" >&2
    return 1
}

results=()
port=$(free_port)
"$BIN/testsrc" --stamp-on-write |
    "$PINHOLED" --source pipe:- --listen "127.0.0.1:$port" --data-dir "$tmp/data" \
        >"$tmp/pinholed.log" 2>&1 &
pids+=($!)
wait_port "$port"
results+=("$("$BIN/ws-latency" --url "ws://127.0.0.1:$port/ws/h264" --warmup "$WARMUP" \
    --duration "$DURATION" --label "$LABEL: testsrc → pinholed --source pipe:- → /ws/h264" |
    sed -n 's/^RESULT //p')")
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

if [ "$SEED" = 1 ] && command -v websockify >/dev/null; then
    src=$(free_port) ws=$(free_port)
    "$BIN/testsrc" --stamp-on-write --listen "127.0.0.1:$src" >"$tmp/testsrc.log" 2>&1 &
    pids+=($!)
    wait_port "$src"
    websockify "127.0.0.1:$ws" "127.0.0.1:$src" >"$tmp/websockify.log" 2>&1 &
    pids+=($!)
    wait_port "$ws"
    results+=("$("$BIN/ws-latency" --url "ws://127.0.0.1:$ws/" --warmup "$WARMUP" \
        --duration "$DURATION" --label "seed: testsrc --listen → websockify" |
        sed -n 's/^RESULT //p')")
fi

load=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# Pipe latency $(date -u +%FT%TZ) · $(nproc) cores · load $load"
    echo
    echo "| run | frames | p50 ms | p95 ms | p99 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|"
    for r in "${results[@]}"; do
        echo "RESULT $r" >&2
        python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("| %s | %s | %s | %s | %s | %s |" % (r["label"], r["frames"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"]))' "$r"
    done
} >>"$OUT"
echo "pipe-latency: appended to $OUT" >&2
