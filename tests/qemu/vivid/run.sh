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
#   tests/qemu/vivid/run.sh [PINHOLED]
# PINHOLED defaults to cross/build.sh's binary. The kernel and modules come
# from Debian's linux-image-*-arm64 package: the one in out/cache/apt (the
# image build's cache) or, failing that, apt-get download. Exit 0 when every
# check printed PASS. Needs qemu-system-aarch64 and cpio.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${1:-$repo/target-aarch64/aarch64-unknown-linux-gnu/release/pinholed}
[ -x "$bin" ] || { echo "vivid: no pinholed at $bin (run cross/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kdeb=$(ls "$repo"/out/cache/apt/linux-image-[0-9]*-arm64_*_arm64.deb 2>/dev/null | head -1 || true)
if [ -z "$kdeb" ]; then
    pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null \
          | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    mkdir -p "$work/dl" && chmod 777 "$work/dl"
    (cd "$work/dl" && apt-get download -qq "$pkg") || true
    kdeb=$(ls "$work"/dl/linux-image-*.deb 2>/dev/null | head -1 || true)
fi
[ -n "$kdeb" ] || { echo "vivid: no linux-image arm64 package" >&2; exit 2; }
dpkg-deb -x "$kdeb" "$work/k"
kernel=$(ls "$work"/k/boot/vmlinuz-* | head -1)
mods=$(ls -d "$work"/k/lib/modules/* | head -1)

mkdir -p "$work/ini"/{bin,proc,sys,dev,tmp,lib/modules}
deb=${BUSYBOX_DEB:-$(ls "$repo"/out/cache/apt/busybox-static_*_arm64.deb 2>/dev/null | head -1 || true)}
if [ -z "$deb" ]; then
    # apt's sandbox user must be able to write the download directory.
    mkdir -p "$work/dl" && chmod 777 "$work/dl"
    (cd "$work/dl" && apt-get download -qq busybox-static:arm64) || true
    deb=$(ls "$work"/dl/busybox-static_*_arm64.deb 2>/dev/null | head -1 || true)
fi
[ -n "$deb" ] || { echo "vivid: cannot fetch busybox-static:arm64" >&2; exit 2; }
dpkg-deb -x "$deb" "$work/bb"
cp "$work/bb/bin/busybox" "$work/ini/bin/busybox"
cp "$bin" "$work/ini/pinholed"

# vivid and its dependencies, in load order (dependencies first). The
# package has no modules.dep (depmod runs at install time): read each
# module's own "depends=" from its .modinfo section instead.
find_ko() { find "$mods" \( -name "$1.ko*" -o -name "${1//_/-}.ko*" \) | head -1; }
deps_of() {
    case "$1" in
        *.xz) xz -dc "$1" | strings -a ;;
        *) strings -a "$1" ;;
    esac | sed -n 's/^depends=//p' | tr ',' ' '
}
order=()
add() {
    local f=$1 d
    [ -n "$f" ] || { echo "vivid: a dependency is missing from the kernel package" >&2; exit 2; }
    case " ${order[*]} " in *" $f "*) return ;; esac
    for d in $(deps_of "$f"); do add "$(find_ko "$d")"; done
    order+=("$f")
}
add "$(find_ko vivid)"
for f in "${order[@]}"; do
    b=$(basename "$f")
    cp "$f" "$work/ini/lib/modules/"
    case "$b" in *.xz) xz -d "$work/ini/lib/modules/$b"; b=${b%.xz} ;; esac
    echo "$b" >> "$work/ini/modules.order"
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
