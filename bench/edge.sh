#!/bin/sh
# LL-HLS behind a caching edge (docs/scale.md): the image's nginx as origin, a second nginx
# (proxy_cache + proxy_cache_lock) as edge, N light LL-HLS viewers (blocking reload + part).
# Usage: bench/edge.sh [VIEWERS [SECONDS]]   (default 200 viewers for 60 s; CI runs 200 for 15 s)
# Prints the figures and appends them to bench/results/edge.md. Needs nginx.
set -eu
cd "$(dirname "$0")/.."
viewers=${1:-200}
secs=${2:-60}
out=$(PINHOLE_EDGE_VIEWERS=$viewers PINHOLE_EDGE_SECS=$secs \
  cargo test -q -p pinhole-server --test edge_cache -- --nocapture 2>&1) || { echo "$out"; exit 1; }
line=$(echo "$out" | grep '^edge:')
echo "$line"
printf -- '- %s, load %s, commit %s: %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(git rev-parse --short HEAD)" "${line#edge: }" >> bench/results/edge.md
