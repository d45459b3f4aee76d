#!/usr/bin/env bash
# The vivid camera scenario, booted straight into an initramfs (no image
# build needed): Debian's arm64 kernel + vivid from the image's rootfs,
# busybox, and a static pinholed. It checks, inside the guest:
#   1. --source auto picks vivid's /dev/video0 and video flows (/stream.mp4
#      bytes, /snapshot.jpg, /api/status "running");
#   2. unplug (platform unbind) with a viewer connected: status "failed"
#      with a reason, the daemon stays up;
#   3. replug (bind): video resumes;
#   4. rmmod vivid / modprobe vivid (the module again): video resumes.
#
#   tests/qemu/vivid/run.sh [PINHOLED] [ROOTFS_DIR] [VMLINUZ]
# Defaults: cross/build.sh's binary, out/qemu-arm64/rootfs, .../stage/vmlinuz.
# Exit 0 when every check printed PASS. Needs qemu-system-aarch64, cpio,
# and busybox-static:arm64 (fetched with apt-get download).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${1:-$repo/target-aarch64/aarch64-unknown-linux-gnu/release/pinholed}
rootfs=${2:-$repo/out/qemu-arm64/rootfs}
kernel=${3:-$repo/out/qemu-arm64/stage/vmlinuz}
kver=$(ls "$rootfs/lib/modules" | head -1)
mods=$rootfs/lib/modules/$kver
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for f in "$bin" "$kernel" "$mods/modules.dep"; do
    [ -e "$f" ] || { echo "vivid: missing $f" >&2; exit 2; }
done

mkdir -p "$work/ini"/{bin,proc,sys,dev,tmp,lib/modules}
(cd "$work" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1 || true)
deb=$(ls "$work"/busybox-static_*_arm64.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "vivid: cannot fetch busybox-static:arm64" >&2; exit 2; }
dpkg-deb -x "$deb" "$work/bb"
cp "$work/bb/bin/busybox" "$work/ini/bin/busybox"
cp "$bin" "$work/ini/pinholed"

# vivid and its dependencies, in load order (dependencies first).
order=()
add() {
    local m=$1 d
    for d in $(grep "^$m:" "$mods/modules.dep" | cut -d: -f2); do add "$d"; done
    case " ${order[*]} " in *" $m "*) ;; *) order+=("$m") ;; esac
}
add kernel/drivers/media/test-drivers/vivid/vivid.ko
for m in "${order[@]}"; do
    cp "$mods/$m" "$work/ini/lib/modules/"
    echo "$(basename "$m")" >> "$work/ini/modules.order"
done
cp "$here/init.sh" "$work/ini/init"
chmod +x "$work/ini/init"
(cd "$work/ini" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")

log=${VIVID_LOG:-$work/console.log}
timeout 600 qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic \
    -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "console=ttyAMA0 rdinit=/init quiet panic=-1" -no-reboot \
    | tee "$log" | grep --line-buffered -E '^(PASS|FAIL|STATUS|INFO)' || true
fails=$(grep -c '^FAIL' "$log" || true)
passes=$(grep -c '^PASS' "$log" || true)
echo "$passes passed, $fails failed"
[ "$fails" = 0 ] && [ "$passes" -ge 6 ]
