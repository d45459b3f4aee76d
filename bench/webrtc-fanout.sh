#!/usr/bin/env bash
# WebRTC (WHEP) fan-out benchmark: 1, 20 and 100 sessions of the 720p30
# stream at 3 Mbit/s on loopback: server CPU and RSS, server-added delay (the
# endpoint's histogram: frame published -> datagrams handed to the socket),
# client-measured delay (timestamp SEI: publish wallclock -> the frame's last
# packet at the client), datagrams sent, send errors, packets lost.
#
# Server: bench/fanout's fanout-server (the real hub + pinhole_server +
# pinhole_webrtc, pre-encoded pattern padded with SEI to the bitrate), pinned
# to core 0. Load: bench/webrtc/fanout.py, aiortc sessions (SRTP decrypted,
# not decoded) in processes of 25, pinned to core 1.
# Writes bench/results/webrtc-fanout-<date>.md. Not in CI.
#
# Environment: SESSIONS ("1 20 100"), DURATION (20 s per row), WARMUP (5 s),
# BITRATE (3000000), PROFILE (release; "dev" for a quick check),
# RESEND_KIB (the resend buffer per session, KiB: 512 as the daemon; 1200 as before 2026-12-07),
# HTTP_PORT / WEBRTC_PORT (0: free ones), BUILD (0: use the built server), PIN (1: server on core 0, clients
# on core 1; 0: let the scheduler place them, for a machine others load).
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-"1 20 100"}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
BITRATE=${BITRATE:-3000000}
PROFILE=${PROFILE:-release}
PIN=${PIN:-1}
RESEND_KIB=${RESEND_KIB:-512}
# exec: the server's pid is then $! itself.
on() { if [ "$PIN" = 1 ]; then exec taskset -c "$@"; else shift; exec "$@"; fi; }
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
[ "${BUILD:-1}" = 0 ] || cargo build --profile "$PROFILE" -p pinhole-bench --bin fanout-server
BIN=target/$dir
PY=$(tests/webrtc/venv.sh)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=${HTTP_PORT:-$(free_port)}
WEBRTC_PORT=${WEBRTC_PORT:-0}
tmp=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

on 0 "$BIN/fanout-server" --port "$HTTP_PORT" --webrtc-port "$WEBRTC_PORT" --resend-kib "$RESEND_KIB" \
    --pad-sei --bitrate "$BITRATE" >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 120); do grep -q '^WEBRTC ' "$tmp/server.log" && break; sleep 1; done
grep -q '^WEBRTC ' "$tmp/server.log" || { cat "$tmp/server.log"; exit 1; }
grep '^ENCODED' "$tmp/server.log"

date=$(date -u +%F)
out=bench/results/webrtc-fanout-$date.md
{
    echo "# WebRTC (WHEP) fan-out, $date ($(git rev-parse --short HEAD), $PROFILE build)"
    echo
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg). $([ "$PIN" = 1 ] && echo "Server pinned to core 0, aiortc clients to core 1." || echo "Not pinned (PIN=0).") One probe session per 25 (decrypts, reads the timestamp SEI: the client-measured delay), the rest sinks (RTP counted from the clear header, not decrypted)."
    echo "$(grep '^ENCODED' "$tmp/server.log") Resend buffer: $RESEND_KIB KiB per session."
    echo
    echo "| Sessions | Server CPU, % of one core | Server waiting for a CPU, ms/s | Server RSS / peak, MiB | Server-added p50 / p99, ms (bucket top) | Client-measured p50 / p99 / max, ms (probes) | Datagrams sent/s | Mbit/s per session | Send errors | Lost (seq gaps; probes) | Client UDP buffer drops | Frames per session min / max (of $((DURATION * 30))) | Failed | Client CPU, % | Load (1 min) |"
    echo "|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
} >"$out"
for n in $SESSIONS; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    json=$(on 1 "$PY" bench/webrtc/fanout.py run --url "http://127.0.0.1:$HTTP_PORT/whep" \
        --server-pid "$server" --sessions "$n" --warmup "$WARMUP" --duration "$DURATION")
    echo "$json" | tee -a "$tmp/results.jsonl"
    python3 - "$json" "$load" >>"$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); load = sys.argv[2]
f = lambda v, d=1: "—" if v is None else f"{v:.{d}f}"
print(f"| {r['sessions']} | {f(r['server_cpu_pct'])} | {f(r['server_wait_ms_per_s'], 0)} | {f(r['server_rss_mib'])} / {f(r['server_hwm_mib'])} "
      f"| {f(r['server_delay_p50_ms'], 2)} / {f(r['server_delay_p99_ms'], 2)} "
      f"| {f(r['client_p50_ms'])} / {f(r['client_p99_ms'])} / {f(r['client_max_ms'])} "
      f"| {r['server_packets_sent'] / r['duration_s']:.0f} | {f(r['server_mbit_per_session'], 2)} | {r['server_send_errors']} "
      f"| {r['client_lost']} ({r['probe_lost']}) | {r['client_udp_rcvbuf_drops']} | {r['frames_min']} / {r['frames_max']} | {r['failed']} "
      f"| {f(r['client_cpu_pct'])} | {load} |")
PY
    sleep 3
done
{
    echo
    echo "Raw:"
    echo '```'
    cat "$tmp/results.jsonl"
    echo '```'
} >>"$out"
cat "$out"
