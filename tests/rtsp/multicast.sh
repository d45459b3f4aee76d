#!/usr/bin/env bash
# RTSP multicast against ffprobe, run inside tests/onvif/netns.sh (a
# network namespace of its own with multicast routed on loopback, so the
# group's packets never reach the machine's network). Usage:
#   tests/onvif/netns.sh tests/rtsp/multicast.sh PINHOLED DIR
# Prints one line per client (codec,width,height,packets), then what a
# listener on the group's RTCP port got.
set -euo pipefail
pinholed=$1 dir=$2
mkdir -p "$dir"
cat >"$dir/config.toml" <<'TOML'
rtsp = ["127.0.0.1:8554"]
[rtsp_server]
multicast_group = "239.255.42.42"
multicast_port = 5004
multicast_ttl = 1
TOML
"$pinholed" --listen 127.0.0.1:8080 --webrtc-listen off --config "$dir/config.toml" \
    --data-dir "$dir/data" --width 320 --height 240 >"$dir/pinholed.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "rtsp on" "$dir/pinholed.log" && break
    sleep 0.1
done
sleep 1 # the first keyframe
probe() {
    # udp_multicast only: ffmpeg asks for RTP/AVP;multicast and nothing
    # else, and reads the group it is told.
    timeout 20 ffprobe -v error -rtsp_transport udp_multicast -read_intervals '%+2' -count_packets \
        -select_streams v:0 -show_entries stream=codec_name,width,height,nb_read_packets \
        -of csv=p=0 rtsp://127.0.0.1:8554/stream
}
# The sender report on the group's RTCP port (RTP's + 1): PT 200.
python3 - >"$dir/sr.txt" <<'PY' &
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("239.255.42.42", 5005))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton("239.255.42.42") + socket.inet_aton("0.0.0.0"))
s.settimeout(15)
try:
    d = s.recv(2048)
    print(f"rtcp pt={d[1]} len={len(d)}")
except socket.timeout:
    print("rtcp none")
PY
sr=$!
# Two at once: both read the one group.
probe >"$dir/a.txt" 2>"$dir/a.err" &
a=$!
probe >"$dir/b.txt" 2>"$dir/b.err" || { cat "$dir/b.err" "$dir/pinholed.log" >&2; exit 1; }
wait $a || { cat "$dir/a.err" "$dir/pinholed.log" >&2; exit 1; }
wait $sr
cat "$dir/a.txt" "$dir/b.txt" "$dir/sr.txt"
