#!/usr/bin/env bash
# Creates (once) the Python venv with Home Assistant's ONVIF libraries
# (onvif-zeep-async, WSDiscovery; pinned in requirements.txt) for
# crates/pinholed/tests/onvif.rs. Prints its python.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PINHOLE_ONVIF_VENV:-target/onvif-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import onvif, wsdiscovery' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/onvif/requirements.txt >&2
fi
echo "$VENV/bin/python"
