#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine of this kind:
# Debian's chromium (never a downloaded browser), ffmpeg (ffprobe validates
# our output), nginx (the LL-HLS front end), libopus-dev (the Opus encoder is
# linked from Debian's libopus; the cross build takes its arm64 libopus.a),
# GStreamer and PyAV (RTSP clients), nginx-rtmp and srt-tools (the media
# servers the push tests feed; nginx's stream module for RTMPS), and the browser tests' npm modules.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx-light)
# The WebRTC tests' aiortc lives in a venv (tests/webrtc/venv.sh).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
dpkg -s libopus-dev >/dev/null 2>&1 || need+=(libopus-dev pkg-config)
# RTSP clients we did not write (crates/pinhole-server/tests/rtsp_clients.rs):
# GStreamer's rtspsrc + avdec_h264 and Home Assistant's PyAV. (Not VLC:
# Debian's has no RTSP client, live555 is not packaged; see docs/rtsp.md.)
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools)
dpkg -s gstreamer1.0-plugins-good >/dev/null 2>&1 || need+=(gstreamer1.0-plugins-good)
dpkg -s gstreamer1.0-libav >/dev/null 2>&1 || need+=(gstreamer1.0-libav)
/usr/bin/python3 -c 'import av' 2>/dev/null || need+=(python3-av)
# ONVIF's test runs Home Assistant's libraries in a network namespace of
# its own (tests/onvif/netns.sh: unshare + ip).
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# The push tests' real media servers: nginx-rtmp, and srt-live-transmit.
dpkg -s libnginx-mod-rtmp >/dev/null 2>&1 || need+=(libnginx-mod-rtmp)
# ...and nginx's stream module, the TLS terminator in front of it (RTMPS).
dpkg -s libnginx-mod-stream >/dev/null 2>&1 || need+=(libnginx-mod-stream)
command -v srt-live-transmit >/dev/null || need+=(srt-tools)
# Test CAs and certificates (RTMPS terminator, the push API's and panel's private CA).
command -v openssl >/dev/null || need+=(openssl)
# crates/pinholed/tests/inbound.rs: network namespaces and veth pairs.
command -v ip >/dev/null || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packaged nginx must not hold port 80 on a test machine.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  $SUDO systemctl stop nginx || true
fi

if [ ! -d tests/browser/node_modules ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# aiortc, the WebRTC client of crates/pinholed/tests/webrtc.rs (pinned in
# tests/webrtc/requirements.txt): the test makes it too, this only does it early.
echo "== WebRTC test venv: $(tests/webrtc/venv.sh)"
# onvif-zeep-async + WSDiscovery, Home Assistant's ONVIF libraries (pinned in
# tests/onvif/requirements.txt), for crates/pinholed/tests/onvif.rs.
echo "== ONVIF test venv: $(tests/onvif/venv.sh)"
