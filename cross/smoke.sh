#!/usr/bin/env bash
# Smoke-test the static aarch64 pinholed under qemu-user:
#   1. `file` says it is a statically linked aarch64 ELF
#   2. `pinholed --version` runs
#   3. it serves /api/status (or /snapshot.jpg) on a loopback port and on a
#      Unix socket, with the test-pattern source
#   4. the libcamera helper is a dynamically linked aarch64 ELF needing
#      libcamera; `--version` and `--list` run under qemu-user; pinholed
#      with `--source libcamera` streams from the helper's `--fake` mode
#      (buffers passed as descriptors between the two aarch64 binaries)
#   cross/smoke.sh [path/to/pinholed [path/to/pinhole-libcamera]]
#                                         (default: builds with cross/build.sh)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ge 1 ]; then
    bin=$1
    helper=${2:-$here/../target-aarch64-dyn/aarch64-unknown-linux-gnu/release/pinhole-libcamera}
else
    built=$("$here/build.sh")
    bin=$(tail -n1 <<<"$built")
    helper=$(grep -m1 '/pinhole-libcamera$' <<<"$built" || true)
fi
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
    if curl -s -o /dev/null -w '%{http_code}' -m 5 --unix-socket "$tmp/d.sock" "http://localhost$served" | grep -q 200; then
        ok "serves $served over the Unix socket"
    else
        bad "no answer on the Unix socket"
    fi
elif kill -0 "$pid" 2>/dev/null; then
    skip "no HTTP answer on /api/status or /snapshot.jpg within 60 s (not serving HTTP yet?)"
else
    bad "pinholed exited: $(tail -n 5 "$tmp/log")"
fi

# The libcamera helper (docs/cameras.md). qemu-user runs the dynamic ELF
# with the arm64 multiarch libraries installed by cross/build.sh.
if [ -z "$helper" ] || [ ! -x "$helper" ]; then
    skip "no libcamera helper built (cross/build.sh --no-helper?)"
else
    hdesc=$(file -b "$helper")
    echo "file: $hdesc"
    if grep -q 'ARM aarch64' <<<"$hdesc" && grep -q 'dynamically linked' <<<"$hdesc"; then
        ok "helper is a dynamic aarch64 ELF ($(stat -c %s "$helper") bytes)"
    else
        bad "helper is not a dynamic aarch64 ELF"
    fi
    needed=$(aarch64-linux-gnu-readelf -d "$helper" 2>/dev/null | grep -o 'Shared library: \[[^]]*\]' | tr '\n' ' ')
    if grep -q 'libcamera' <<<"$needed"; then ok "helper links libcamera: $needed"; else bad "helper does not link libcamera: $needed"; fi
    qemu=(qemu-aarch64-static)
    [ -e /lib/ld-linux-aarch64.so.1 ] || qemu+=(-L /usr/aarch64-linux-gnu)
    # libcamera logs to stderr; keep it out of the result line.
    if out=$("${qemu[@]}" "$helper" --version 2>"$tmp/ver.err"); then ok "helper --version: $out"; else bad "helper --version: $out $(tail -n 3 "$tmp/ver.err")"; fi
    # No camera here (Debian's kernel has neither vimc nor the Pi ISP): an
    # empty list is the expected answer; it proves libcamera starts.
    if out=$(timeout 60 "${qemu[@]}" "$helper" --list 2>"$tmp/list.err"); then
        ok "helper --list: ${out:-<empty>}"
    else
        bad "helper --list: $out $(tail -n 3 "$tmp/list.err")"
    fi
    # pinholed ↔ helper across the process boundary, both aarch64.
    printf '#!/bin/sh\nexec %s %q --fake\n' "${qemu[*]}" "$helper" >"$tmp/pinhole-libcamera"
    chmod +x "$tmp/pinhole-libcamera"
    printf '[camera]\nlibcamera_helper = "%s"\n' "$tmp/pinhole-libcamera" >"$tmp/lc.toml"
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    qemu-aarch64-static "$bin" --listen "127.0.0.1:$port" --source libcamera --config "$tmp/lc.toml" \
        --width 320 --height 240 --hls-dir "$tmp/hls" >"$tmp/lc.log" 2>&1 &
    pid=$!
    state=""
    for _ in $(seq 1 90); do
        kill -0 "$pid" 2>/dev/null || break
        st=$(curl -s -m 5 "http://127.0.0.1:$port/api/status" || true)
        if python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["source"]["kind"]=="libcamera" and s["source"]["state"]=="running" and s["frames"]>10 else 1)' "$st" 2>/dev/null; then
            state=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["frames"], "frames,", s["source"]["detail"])' "$st")
            break
        fi
        sleep 1
    done
    if [ -n "$state" ]; then ok "pinholed --source libcamera streams from the helper's fake camera: $state"; else bad "no frames from the helper: $(tail -n 5 "$tmp/lc.log")"; fi
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
