#!/usr/bin/env bash
# Fan-out benchmark: 1, 100 and 500 /ws/h264 viewers of a 4 Mbit/s 720p30
# stream on loopback, then idle RSS of fanout-server and of the real
# pinholed. Writes bench/results/fanout-<date>.md and updates the table in
# bench/README.md. See bench/README.md.
#
# Environment: VIEWERS ("1 100 500"), DURATION (20 s per row), WARMUP (5 s),
# SERVER_CPU (0), CLIENT_CPU (1), MAX_LOAD (1.0: wait for a 1-min load
# average below this before each measurement), LOAD_TRIES (10), LOAD_WAIT
# (30 s between tries), IDLE_WAIT (10 s), STATIC (1: also measure the idle
# daemon built glibc-static, as shipped), EXTRA_SERVER_ARGS, COMMIT (what
# to call the code measured; default: git HEAD).
set -euo pipefail

cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-"1 100 500"}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
MAX_LOAD=${MAX_LOAD:-1.0}
LOAD_TRIES=${LOAD_TRIES:-10}
LOAD_WAIT=${LOAD_WAIT:-30}
IDLE_WAIT=${IDLE_WAIT:-10}
STATIC=${STATIC:-1}
EXTRA_SERVER_ARGS=${EXTRA_SERVER_ARGS:-}

cargo build --release -p pinhole-bench -p pinholed --features pinholed/opus --bins
BIN=target/release

# 500 viewers and 500 server-side sockets, plus a margin.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 1200 ]; then
    echo "fanout.sh: need at least 1200 open files (ulimit -n is $(ulimit -n))" >&2
    exit 1
fi

tmp=$(mktemp -d)
children=()
cleanup() {
    for p in "${children[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
jsonl=$tmp/results.jsonl

# Waits until the 1-min load average is below MAX_LOAD (at most LOAD_TRIES
# tries); sets LOAD1 to the value measured, marked "busy" if never quiet.
wait_quiet() {
    local i load
    for ((i = 1; i <= LOAD_TRIES; i++)); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then
            LOAD1=$load
            return
        fi
        echo "load $load >= $MAX_LOAD; waiting ${LOAD_WAIT}s ($i/$LOAD_TRIES)" >&2
        sleep "$LOAD_WAIT"
    done
    LOAD1="$(cut -d' ' -f1 /proc/loadavg) (busy)"
    echo "machine still busy (load $LOAD1); measuring anyway" >&2
}

# Starts fanout-server pinned to SERVER_CPU; sets SPID, ADDR, ENCODED, LISTEN.
start_server() {
    local out=$tmp/server.out i
    : >"$out"
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" "$BIN/fanout-server" --port 0 $EXTRA_SERVER_ARGS \
        >"$out" 2>"$tmp/server.err" &
    SPID=$!
    children+=("$SPID")
    for ((i = 0; i < 600; i++)); do
        grep -q '^LISTEN' "$out" && break
        kill -0 "$SPID" 2>/dev/null || { cat "$tmp/server.err" >&2; exit 1; }
        sleep 0.2
    done
    LISTEN=$(grep '^LISTEN' "$out") || { echo "fanout-server did not start" >&2; exit 1; }
    ADDR=$(awk '{print $2}' <<<"$LISTEN")
    ENCODED=$(grep '^ENCODED' "$out" | sed 's/^ENCODED //')
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

rss_line() { # process pid
    local rss hwm
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$2/status")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$2/status")
    printf '{"kind":"idle","process":"%s","rss_kib":%s,"hwm_kib":%s,"load1":"%s"}\n' \
        "$1" "$rss" "$hwm" "$LOAD1"
}

commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -z "${COMMIT:-}" ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
fi
printf '{"kind":"meta","date":"%s","cpu_model":"%s","cores":"%s","virt":"%s","kernel":"%s","rustc":"%s","commit":"commit %s","server_pin":"%s","client_pin":"%s","warmup":"%s"}\n' \
    "$(date -u +%Y-%m-%d)" \
    "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    "$(nproc)" \
    "$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1 | sed 's/^$/bare metal/;s/^\(..*\)$/\1 VM/')" \
    "$(uname -r)" "$(rustc -V)" "$commit" \
    "taskset -c $SERVER_CPU, tokio multi-thread runtime (1 worker under that mask) + the publisher thread" \
    "taskset -c $CLIENT_CPU" "$WARMUP" >"$jsonl"

for n in $VIEWERS; do
    start_server
    wait_quiet
    echo "== $n viewers (load $LOAD1)" >&2
    result=$(taskset -c "$CLIENT_CPU" "$BIN/fanout-client" --addr "$ADDR" --server-pid "$SPID" \
        --viewers "$n" --warmup "$WARMUP" --duration "$DURATION" | sed -n 's/^RESULT //p')
    stop "$SPID"
    [ -n "$result" ] || { echo "fanout-client failed" >&2; exit 1; }
    printf '{"kind":"run","load1":"%s","listen":"%s","encoded":"%s","result":%s}\n' \
        "$LOAD1" "$LISTEN" "$ENCODED" "$result" >>"$jsonl"
    echo "$result" >&2
done

# Idle RSS: the bench server with no viewers, then the real daemon with its
# defaults (test pattern 1280x720 30 fps 2 Mbit/s, LL-HLS into a temporary
# directory) and no viewers.
start_server
wait_quiet
sleep "$IDLE_WAIT"
rss_line "fanout-server (hub + serve, pre-encoded stream looping, no viewers)" "$SPID" >>"$jsonl"
stop "$SPID"

# The daemon, idle: started with the given arguments, measured IDLE_WAIT after
# its first frame.  idle_daemon LABEL BINARY [ARGS...]
idle_daemon() {
    local label=$1 bin=$2 port status i
    shift 2
    port=$((20000 + RANDOM % 20000))
    wait_quiet
    "$bin" --listen "127.0.0.1:$port" --data-dir "$tmp/data" "$@" >"$tmp/pinholed.log" 2>&1 &
    DPID=$!
    children+=("$DPID")
    for ((i = 0; i < 100; i++)); do
        status=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
            printf 'GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 &&
            cat <&3) 2>/dev/null || true)
        grep -q '"frames":[1-9]' <<<"$status" && break
        sleep 0.2
    done
    sleep "$IDLE_WAIT"
    rss_line "$label" "$DPID" >>"$jsonl"
    stop "$DPID"
}

# An H.264 source (what a camera with its own encoder, e.g. the Pi's
# bcm2835-v4l2, or a pipe delivers): 720p30 4 Mbit/s, paced, looped.
h264=""
if command -v ffmpeg >/dev/null; then
    h264=$tmp/720p30.h264
    ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 -c:v libx264 \
        -profile:v baseline -b:v 4M -maxrate 4M -bufsize 1M -g 30 -bf 0 "$h264"
fi
idle_daemon "pinholed (defaults: test pattern 720p30 2 Mbit/s, software-encoded live, LL-HLS on), no viewers" "$BIN/pinholed"
[ -z "$h264" ] || idle_daemon "pinholed, H.264 source (pipe: 720p30 4 Mbit/s file, LL-HLS on), no viewers" "$BIN/pinholed" --source "pipe:$h264"
# As shipped: the image's binary is glibc-static (cross/build.sh), which maps
# only the libc it uses; the dynamic build above also counts whole shared libs.
if [ "$STATIC" = 1 ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p pinholed --bin pinholed \
        --target "$host" --target-dir target-static
    sbin=target-static/$host/release/pinholed
    idle_daemon "pinholed static (as shipped), defaults: test pattern 720p30, software-encoded live, no viewers" "$sbin"
    [ -z "$h264" ] || idle_daemon "pinholed static (as shipped), H.264 source (pipe: 720p30 4 Mbit/s), no viewers" "$sbin" --source "pipe:$h264"
fi

date=$(date -u +%Y-%m-%d)
mkdir -p bench/results
cp "$jsonl" "bench/results/fanout-$date.jsonl"
"$BIN/fanout-report" --input "$jsonl" --out "bench/results/fanout-$date.md" \
    --readme bench/README.md --link "results/fanout-$date.md"
echo "wrote bench/results/fanout-$date.md and updated bench/README.md" >&2
