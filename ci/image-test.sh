#!/usr/bin/env bash
# Cold path CI runs: cross-build pinholed, build the qemu-arm64 image, boot it
# in QEMU and run the system test (with the snd-aloop audio checks in the same
# boot), then the V4L2 camera scenarios on vivid with the same binary and
# image (tests/qemu/vivid: run.sh in an initramfs, image_hotplug.py in the
# image), and the .deb built from the same binary with its contents checked.
# Needs root (apt, binfmt, mmdebstrap).
#   ci/image-test.sh [--no-ab]        (extra args go to tests/qemu/boot_test.py)
# PI_BOARDS="rpi3 rpi4 rpi5" also builds those boards and checks their contents
# (image/check: no boot; rpi3's boot.scr is the one booted here).
# Prints timings: binary size, image build time/size, boot to first frame,
# and each test's duration.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
t0=$(date +%s)

pkgs=(qemu-system-arm u-boot-qemu mtools python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

bin=$(cross/build.sh | tail -n1)
t1=$(date +%s)
cross/smoke.sh "$bin"
# --keep: ci/ota-test.sh --reuse-rootfs builds its versions from this rootfs.
img=$(image/build --keep --pinholed "$bin" qemu-arm64 | tail -n1)
rc=0
image/check qemu-arm64 || rc=$?
# The Pi boards cannot boot here: build them and check their contents
# (PI_BOARDS="rpi3 rpi4 rpi5", as ci/test.sh does; each is another rootfs, ~2.3 min quiet).
for b in ${PI_BOARDS:-}; do
    image/build --pinholed "$bin" "$b" >/dev/null && image/check "$b" || rc=$?
done
# The Raspberry Pi OS package from the same binary, its contents checked (seconds;
# installing it in an arm64 root is tests/deb/run.sh, ~12 min, not in CI).
deb=$(image/deb/build --pinholed "$bin" | tail -n1) && tests/deb/contents.sh "$deb" || rc=$?
t2=$(date +%s)
mkdir -p out/test
python3 tests/qemu/boot_test.py --log-dir out/test "$@" "$img" || rc=$?
t3=$(date +%s)
# One QEMU at a time: each of these boots its own guest.
echo "---- vivid: initramfs scenario (tests/qemu/vivid/run.sh) ----"
VIVID_LOG=out/test/vivid-console.log tests/qemu/vivid/run.sh "$bin" || rc=$?
t4=$(date +%s)
echo "---- vivid: hotplug in the image (tests/qemu/vivid/image_hotplug.py) ----"
HOTPLUG_LOG=out/test/hotplug-console.log python3 tests/qemu/vivid/image_hotplug.py "$img" || rc=$?
t5=$(date +%s)
echo "---- image-test summary ----"
echo "pinholed:     $(stat -c %s "$bin") bytes (static aarch64), cross build $((t1 - t0))s"
echo "image:        $img, $(du -h --apparent-size "$img" | cut -f1) ($(du -h "$img" | cut -f1) allocated), built in $((t2 - t1))s"
grep -E '^(root.sqfs|initrd):' "${img%.img}.summary" || true
echo "system test:  $((t3 - t2))s; console log out/test/console.log"
echo "vivid:        initramfs $((t4 - t3))s (out/test/vivid-console.log), image hotplug $((t5 - t4))s (out/test/hotplug-console.log)"
exit "$rc"
