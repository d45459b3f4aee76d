#!/usr/bin/env bash
# RTSP/TCP fan-out benchmark: 1, 50 and 200 RTSP sessions (interleaved TCP)
# of a 4 Mbit/s 720p30 stream on loopback: server-added latency (the
# server's histogram, publish -> write done) and client-measured latency
# (timestamp SEI: publish wallclock -> received), server CPU, RSS. One
# fanout-server (the real hub + pinhole_server's RTSP server, pinned to
# core 0, padded with SEI so RTP carries 4 Mbit/s: RTP drops filler NALs),
# rtsp-client pinned to core 1. Writes bench/results/rtsp-fanout-<date>.md.
#
# Environment: CLIENTS ("1 50 200"), DURATION (20 s per row), WARMUP (5 s),
# PROFILE (release; "dev" for a quick check), RTSP_PORT / HTTP_PORT (0:
# pick free ones), SERVER_BIN (a fanout-server binary to measure instead of
# this tree's, for before/after runs back to back), OUT (the results file),
# SERVER_CPUS / CLIENT_CPUS (taskset lists: 0 and 1), BUILD (0: use the
# binaries already built), CLIENT_BIN (an rtsp-client binary), RPS (1: run
# in a network namespace of its own whose loopback hands received packets
# to CLIENT_CPUS by Receive Packet Steering, as a NIC's receiver is another
# machine; needs root).
#
# Why RPS: on loopback the receiving side's TCP work (tcp_v4_rcv, queueing,
# waking the reader) runs in the sender's softirq, inside its writev, on the
# server's core; a real network interface does not bill it to the sender.
set -euo pipefail
cd "$(dirname "$0")/.."
RPS=${RPS:-0}
if [ "$RPS" = 1 ] && [ -z "${RTSP_FANOUT_NETNS:-}" ]; then
    ns=pinhole-rtsp-fanout-$$
    ip netns add "$ns"
    trap 'ip netns del "$ns"' EXIT
    ip netns exec "$ns" ip link set lo up
    # taskset list → hex CPU mask for rps_cpus.
    mask=$(python3 -c 'import sys
m = 0
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    for c in range(int(a), int(b or a) + 1):
        m |= 1 << c
print(f"{m:x}")' "${CLIENT_CPUS:-1}")
    # `ip netns exec` mounts the namespace's own /sys: this is its lo only.
    ip netns exec "$ns" sh -c "echo $mask > /sys/class/net/lo/queues/rx-0/rps_cpus"
    RTSP_FANOUT_NETNS=$ns ip netns exec "$ns" "$0" "$@"
    exit
fi
CLIENTS=${CLIENTS:-"1 50 200"}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
PROFILE=${PROFILE:-release}
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
[ "${BUILD:-1}" = 0 ] || cargo build --profile "$PROFILE" -p pinhole-bench --bins
BIN=target/$dir
SERVER_BIN=${SERVER_BIN:-$BIN/fanout-server}
CLIENT_BIN=${CLIENT_BIN:-$BIN/rtsp-client}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RTSP_PORT=${RTSP_PORT:-$(free_port)}
HTTP_PORT=${HTTP_PORT:-$(free_port)}
tmp=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

taskset -c "$SERVER_CPUS" "$SERVER_BIN" --port "$HTTP_PORT" --rtsp-port "$RTSP_PORT" --pad-sei >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 120); do grep -q '^RTSP ' "$tmp/server.log" && break; sleep 1; done
grep -q '^RTSP ' "$tmp/server.log" || { cat "$tmp/server.log"; exit 1; }
grep '^ENCODED' "$tmp/server.log"

date=$(date -u +%F)
out=${OUT:-bench/results/rtsp-fanout-$date.md}
{
    echo "# RTSP/TCP fan-out, $date ($(git rev-parse --short HEAD), $PROFILE build)"
    echo
    echo "$(nproc) cores, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg). Server on core(s) $SERVER_CPUS ($SERVER_BIN), client on $CLIENT_CPUS; loopback receive work: $( [ "$RPS" = 1 ] && echo "steered to the client's core(s) (RPS, own netns)" || echo "on the sender's core (plain loopback)")."
    echo "$(grep '^ENCODED' "$tmp/server.log")"
    echo
    echo "| Sessions | Server-added p50 / p99, ms (histogram estimate, bucket top) | Client-measured p50 / p99 / max, ms | Client p99 keyframes / P-frames, ms | Server CPU, % of one core | Server CPU per frame, ms | Server waiting for a CPU, ms/s | Server RSS / peak, MiB | Frames per session min / max (of $((DURATION * 30))) | Lost packets | Failed sessions | Load (1 min) |"
    echo "|---:|---|---|---|---:|---:|---:|---|---|---:|---:|---:|"
} >"$out"
for n in $CLIENTS; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    json=$(taskset -c "$CLIENT_CPUS" "$CLIENT_BIN" --rtsp-port "$RTSP_PORT" --http-port "$HTTP_PORT" \
        --server-pid "$server" --clients "$n" --warmup "$WARMUP" --duration "$DURATION")
    echo "$json" | tee -a "$tmp/results.jsonl"
    python3 - "$json" "$load" >>"$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); load = sys.argv[2]
f = lambda v, d=2: "—" if v is None else f"{v:.{d}f}"
sp = lambda q: "—" if q is None else f"{q[0]:.2f} ({q[1]:g})"
print(f"| {r['clients']} | {sp(r['server_p50_ms'])} / {sp(r['server_p99_ms'])} | {f(r['client_p50_ms'])} / {f(r['client_p99_ms'])} / {f(r['client_max_ms'])} "
      f"| {f(r.get('client_key_p99_ms'))} / {f(r.get('client_delta_p99_ms'))} "
      f"| {f(r['server_cpu_pct'], 1)} | {f(r.get('server_cpu_ms_per_frame'))} | {f(r['server_wait_ms_per_s'], 0)} | {f(r['server_rss_mib'], 1)} / {f(r['server_hwm_mib'], 1)} "
      f"| {r['frames_min']} / {r['frames_max']} | {r['lost_packets']} | {r['failed']} | {load} |")
PY
done
{
    echo
    echo "Raw:"
    echo '```'
    cat "$tmp/results.jsonl"
    echo '```'
} >>"$out"
cat "$out"
