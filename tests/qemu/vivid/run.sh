#!/usr/bin/env bash
# The vivid camera scenario, booted straight into an initramfs (no image
# build needed): Debian's arm64 kernel + vivid from the image's rootfs,
# busybox, and a static pinholed. It checks, inside the guest (init.sh):
#   1. --source auto with no camera runs the test pattern and says why;
#   2. modprobe vivid: the same daemon switches to /dev/video0, a viewer
#      connected before keeps receiving, /snapshot.jpg works;
#   3. GET /api/camera lists vivid's controls (ranges, defaults, values read
#      from the driver); PUT brightness reaches the driver and is saved under
#      /data; out of range is a 400 that changes nothing; on the host: the
#      snapshot's mean luma rises with brightness (needs ffmpeg, else SKIP);
#   4. unplug (platform unbind) with a viewer connected: status "failed"
#      with a reason, the daemon stays up; replug (bind): video resumes and
#      the saved brightness is set again;
#   5. rmmod vivid / modprobe vivid (the module again): video resumes;
#   6. daemon restart after a driver reload: brightness set from /data.
#
#   tests/qemu/vivid/run.sh [PINHOLED]
# PINHOLED defaults to cross/build.sh's binary. The kernel and modules come
# from Debian's linux-image-*-arm64 package: the one in out/cache/apt (the
# image build's cache) or, failing that, apt-get download. Exit 0 when every
# check printed PASS. Needs qemu-system-aarch64, cpio, binutils (strings),
# xz-utils and ffmpeg (the luma check); as root it installs what is missing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../../ci/lib/need.sh"
need vivid qemu-system-aarch64:qemu-system-arm cpio:cpio strings:binutils xz:xz-utils \
    python3:python3 ffmpeg:ffmpeg
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${1:-$repo/target-aarch64/aarch64-unknown-linux-gnu/release/pinholed}
[ -x "$bin" ] || { echo "vivid: no pinholed at $bin (run cross/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download PKG into $work/dl; with stale or no package lists (a
# fresh machine, lists cleaned), as root: update them once and retry.
fetch() {
    # apt's sandbox user must be able to write the download directory.
    mkdir -p "$work/dl" && chmod 777 "$work/dl"
    (cd "$work/dl" && apt-get download -qq "$1" 2>/dev/null) && return 0
    [ "$(id -u)" = 0 ] || return 0
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get -o DPkg::Lock::Timeout=900 update -qq || true
    (cd "$work/dl" && apt-get download -qq "$1") || true
}
# The image build's apt cache (image/build: PINHOLE_APT_CACHE): the kernel the
# qemu-arm64 image has (its stage/kernel-version; the cache is shared with the
# Pi boards, and rpi5's backports kernel is newer), else the newest there.
cache=${PINHOLE_APT_CACHE:-$repo/out/cache/apt}
kver=$(cat "${PINHOLE_OUT:-$repo/out}/qemu-arm64/stage/kernel-version" 2>/dev/null || true)
kdeb=$(ls "$cache"/linux-image-"${kver:-[0-9]*-arm64}"_*_arm64.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$kdeb" ]; then
    # `|| true`: before the arm64 lists exist apt-cache fails, and under
    # pipefail that would end the script before the fallback below runs.
    kpkg() { { apt-cache depends linux-image-arm64:arm64 2>/dev/null || true; } \
             | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
    pkg=$(kpkg)
    if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        apt-get -o DPkg::Lock::Timeout=900 update -qq || true
        pkg=$(kpkg)
    fi
    [ -n "$pkg" ] && fetch "$pkg"
    kdeb=$(ls "$work"/dl/linux-image-*.deb 2>/dev/null | head -1 || true)
fi
[ -n "$kdeb" ] || { echo "vivid: no linux-image arm64 package" >&2; exit 2; }
dpkg-deb -x "$kdeb" "$work/k"
kernel=$(ls "$work"/k/boot/vmlinuz-* | head -1)
# bookworm's package ships /lib/modules, trixie's (merged /usr) /usr/lib/modules
mods=$(ls -d "$work"/k/usr/lib/modules/* "$work"/k/lib/modules/* 2>/dev/null | head -1 || true)

mkdir -p "$work/ini"/{bin,proc,sys,dev,tmp,lib/modules}
deb=${BUSYBOX_DEB:-$(ls "$cache"/busybox-static_*_arm64.deb 2>/dev/null | sort -V | tail -1 || true)}
if [ -z "$deb" ]; then
    fetch busybox-static:arm64
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
# -nic none: the guest talks to its daemon on its own loopback, so it needs
# no NIC (virt's default virtio-net-pci would want efi-virtio.rom from ipxe-qemu).
qrc=0
timeout 600 qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -nic none \
    -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "console=ttyAMA0 rdinit=/init quiet panic=-1" -no-reboot \
    2>"$work/qemu.err" | tee "$log" | grep --line-buffered -E '^(PASS|FAIL|STATUS|INFO)' || qrc=$?
if [ -s "$work/qemu.err" ]; then
    sed 's/^/vivid: qemu: /' "$work/qemu.err" >&2
    "$repo/tests/qemu/qemu-missing.sh" < "$work/qemu.err" >&2 || true
fi
grep -q '^PASS' "$log" || { echo "vivid: the guest printed no PASS (qemu exit $qrc); console: $log" >&2; }
# The picture itself: mean luma of the snapshots before and after
# brightness 128 -> 220 (base64 JPEGs between JPEG-BEGIN/JPEG-END lines).
luma() {
    sed -n "/^JPEG-BEGIN $1/,/^JPEG-END/p" "$log" | tr -d '\r' | grep -v '^JPEG-' \
        | base64 -d > "$work/$1.jpg" 2>/dev/null || return 1
    ffmpeg -v error -i "$work/$1.jpg" -vf format=gray -f rawvideo - 2>/dev/null \
        | python3 -c 'import sys; d=sys.stdin.buffer.read(); print(round(sum(d)/len(d), 1) if d else "")'
}
need=15 # PASS lines init.sh prints when all is well
if command -v ffmpeg >/dev/null && command -v python3 >/dev/null; then
    need=16
    l0=$(luma default || true); l1=$(luma bright || true)
    echo "INFO snapshot mean luma: brightness 128 -> ${l0:-?}, brightness 220 -> ${l1:-?}"
    if [ -n "$l0" ] && [ -n "$l1" ] && python3 -c "import sys; sys.exit(0 if $l1 > $l0 + 20 else 1)"; then
        echo "PASS the picture gets brighter with brightness" | tee -a "$log"
    else
        echo "FAIL the picture gets brighter with brightness" | tee -a "$log"
    fi
else
    echo "SKIP picture luma (no ffmpeg on the host)"
fi
fails=$(grep -c '^FAIL' "$log" || true)
passes=$(grep -c '^PASS' "$log" || true)
echo "$passes passed, $fails failed"
[ "$fails" = 0 ] && [ "$passes" -ge "$need" ]
