#!/usr/bin/env bash
# Creates (once) the Python venv with aiortc, the WebRTC stack that is not
# ours, for crates/pinholed/tests/webrtc_*.rs and bench/. Prints its python.
# Pinned: a new aiortc must not change what CI tests without a commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PINHOLE_WEBRTC_VENV:-target/webrtc-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiortc, av' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/webrtc/requirements.txt >&2
fi
echo "$VENV/bin/python"
