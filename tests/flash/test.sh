#!/usr/bin/env bash
# Tests for flash.sh on a file target and (when root can make one) a loop
# device: write + verify with dd and with bmaptool, refusal of the running
# system's disk, of a mounted device, of a partition, of a too-small target,
# and of writing without --yes and without a terminal. Cleans up after itself.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# sfdisk (fdisk) makes the test image; bmaptool (bmap-tools) is flash.sh's
# fast path. A fresh machine has neither: install them as root.
. "$repo/ci/lib/need.sh"
need "flash test" sfdisk:fdisk bmaptool:bmap-tools
flash=$repo/flash.sh
tmp=$(mktemp -d)
loop="" mnt=""
cleanup() {
    if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null || true; fi
    if [ -n "$loop" ]; then losetup -d "$loop" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0 skip=0
ok()   { echo "ok: $*"; pass=$((pass + 1)); }
bad()  { echo "FAIL: $*"; fail=$((fail + 1)); }
skip() { echo "skip: $*"; skip=$((skip + 1)); }
expect_fail() { # what, cmd...
    local what=$1; shift
    if out=$("$@" </dev/null 2>&1); then bad "$what (it succeeded: $out)"; else ok "$what: $(tail -n1 <<<"$out")"; fi
}

# a small image with data, a hole and a GPT, like the real one
img=$tmp/test.img
truncate -s 24M "$img"
printf 'label: gpt\nstart=2048, size=8192, name="a"\nstart=10240, size=20480, name="b"\n' | sfdisk -q "$img"
head -c 3M /dev/urandom | dd of="$img" bs=1M seek=1 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$img" bs=1M seek=20 conv=notrunc status=none

# file target, dd
out=$tmp/out-dd.img
if "$flash" --yes --no-bmap "$img" "$out" >"$tmp/log" 2>&1 && grep -q '^verified' "$tmp/log" \
   && cmp -s "$img" "$out"; then ok "dd to a file: written and verified"; else bad "dd to a file: $(tail -n3 "$tmp/log")"; fi

# file target, bmaptool (pre-filled with junk: holes keep it, mapped blocks must match)
if command -v bmaptool >/dev/null; then
    out=$tmp/out-bmap.img
    head -c 24M /dev/urandom >"$out"
    if "$flash" --yes "$img" "$out" >"$tmp/log" 2>&1 && grep -q 'bmaptool' "$tmp/log" && grep -q '^verified' "$tmp/log"; then
        ok "bmaptool to a file: written and verified"
    else
        bad "bmaptool to a file: $(tail -n3 "$tmp/log")"
    fi
else
    skip "bmaptool not installed"
fi

# refusals
expect_fail "refuses without --yes and without a terminal" "$flash" "$img" "$tmp/out-dd.img"
rootsrc=$(findmnt -no SOURCE / | head -n1)
if [ -b "$rootsrc" ]; then
    rootdisk=$(lsblk -nrpso NAME,TYPE "$rootsrc" | awk '$2=="disk"{print $1}' | tail -n1)
    expect_fail "refuses the disk of the running system (${rootdisk:-$rootsrc})" "$flash" --check-only --yes "$img" "${rootdisk:-$rootsrc}"
else
    skip "root is on $rootsrc (not a block device): running-system check not exercised here"
fi
expect_fail "refuses a missing image" "$flash" --check-only --yes "$tmp/nope.img" "$tmp/x"
expect_fail "refuses a directory target" "$flash" --check-only --yes "$img" "$tmp"

# loop device: real block-device path, mounted refusal, partition refusal, too small
if [ "$(id -u)" = 0 ] && truncate -s 32M "$tmp/disk" && loop=$(losetup --find --show --partscan "$tmp/disk" 2>/dev/null); then
    if "$flash" --yes --no-bmap "$img" "$loop" >"$tmp/log" 2>&1 && grep -q '^verified' "$tmp/log"; then
        ok "dd to a loop device ($loop): written and verified"
    else
        bad "dd to a loop device: $(tail -n3 "$tmp/log")"
    fi
    if command -v bmaptool >/dev/null; then
        if "$flash" --yes "$img" "$loop" >"$tmp/log" 2>&1 && grep -q '^verified' "$tmp/log"; then
            ok "bmaptool to a loop device: written and verified"
        else
            bad "bmaptool to a loop device: $(tail -n3 "$tmp/log")"
        fi
    fi
    partx -a "$loop" 2>/dev/null || blockdev --rereadpt "$loop" 2>/dev/null || true
    pdev=${loop}p1
    if [ ! -b "$pdev" ] && [ -e "/sys/class/block/$(basename "$loop")p1/dev" ]; then
        # no udev here: make the node ourselves
        IFS=: read -r maj min <"/sys/class/block/$(basename "$loop")p1/dev"
        mknod "$tmp/$(basename "$loop")p1" b "$maj" "$min" && pdev=$tmp/$(basename "$loop")p1
    fi
    if [ -b "$pdev" ]; then
        expect_fail "refuses a partition" "$flash" --check-only --yes "$img" "$pdev"
    else
        skip "no partition nodes for $loop (no udev here)"
    fi
    mkfs.ext4 -q -F "$loop" && mkdir -p "$tmp/mnt"
    if mount "$loop" "$tmp/mnt" 2>/dev/null; then
        mnt=$tmp/mnt
        expect_fail "refuses a mounted device" "$flash" --yes "$img" "$loop"
        umount "$mnt"; mnt=""
    else
        skip "cannot mount here: mounted-device refusal not exercised"
    fi
    losetup -d "$loop"; loop=""
    truncate -s 8M "$tmp/small"
    if loop=$(losetup --find --show "$tmp/small" 2>/dev/null); then
        expect_fail "refuses a device smaller than the image" "$flash" --check-only --yes "$img" "$loop"
        losetup -d "$loop"; loop=""
    fi
else
    skip "no loop devices (not root, or none available): block-device paths not exercised"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
