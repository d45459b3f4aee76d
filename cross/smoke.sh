#!/usr/bin/env bash
# Smoke-test the static aarch64 pinholed under qemu-user:
#   1. `file` says it is a statically linked aarch64 ELF
#   2. `pinholed --version` runs
#   3. it serves /api/status (or /snapshot.jpg) on a loopback port and on a
#      Unix socket, with the test-pattern source
#   cross/smoke.sh [path/to/pinholed]     (default: builds with cross/build.sh)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:-$("$here/build.sh" | tail -n1)}
pass=0 fail=0 skip=0
ok()   { echo "ok: $*"; pass=$((pass + 1)); }
bad()  { echo "FAIL: $*"; fail=$((fail + 1)); }
skip() { echo "skip: $*"; skip=$((skip + 1)); }

desc=$(file -b "$bin")
echo "file: $desc"
if grep -q 'ARM aarch64' <<<"$desc" && grep -Eq 'statically linked|static-pie linked' <<<"$desc"; then
    ok "static aarch64 ELF ($(stat -c %s "$bin") bytes)"
else
    bad "not a static aarch64 ELF"
fi

if ver=$(qemu-aarch64-static "$bin" --version 2>&1); then ok "--version: $ver"; else bad "--version: $ver"; fi

tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/hls"
qemu-aarch64-static "$bin" --listen "127.0.0.1:$port" --listen "unix:$tmp/d.sock" \
    --source test --hls-dir "$tmp/hls" >"$tmp/log" 2>&1 &
pid=$!
served=""
for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    for path in /api/status /snapshot.jpg; do
        code=$(curl -s -o "$tmp/body" -w '%{http_code}' -m 5 "http://127.0.0.1:$port$path" || true)
        if [ "$code" = 200 ]; then served=$path; break 2; fi
    done
    sleep 1
done
if [ -n "$served" ]; then
    ok "serves $served over TCP under qemu-user ($(stat -c %s "$tmp/body") bytes)"
    if curl -s -o /dev/null -w '%{http_code}' -m 5 --unix-socket "$tmp/d.sock" "http://x$served" | grep -q 200; then
        ok "serves $served over the Unix socket"
    else
        bad "no answer on the Unix socket"
    fi
elif kill -0 "$pid" 2>/dev/null; then
    skip "no HTTP answer on /api/status or /snapshot.jpg within 60 s (not serving HTTP yet?)"
else
    bad "pinholed exited: $(tail -n 5 "$tmp/log")"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
