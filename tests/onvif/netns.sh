#!/usr/bin/env bash
# Runs a command in a network namespace of its own, where multicast works
# on loopback: WS-Discovery's 239.255.255.250:3702 without touching the
# machine's network or port 3702, and with nobody else's devices answering.
# 10.99.0.1 is added to lo because WSDiscovery (the python package) skips
# loopback addresses. Needs root or unprivileged user namespaces, and iproute2.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
exec "${ns[@]}" -- sh -c '
  ip link set lo up &&
  ip link set lo multicast on &&
  ip addr add 10.99.0.1/24 dev lo &&
  ip route add 224.0.0.0/4 dev lo &&
  exec "$@"' netns "$@"
