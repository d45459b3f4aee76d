#!/usr/bin/env bash
# OTA system test in QEMU (docs/ota.md "Tested in QEMU"): builds the
# qemu-arm64 image as version 1.0.0 plus signed bundles 2.0.0, 3.0.0, a bad
# 4.0.0 (pinholed replaced by `exit 1`), a forged one (other key) and one for
# another board, then runs tests/qemu/ota_test.py. Needs root (image/build).
#   ci/ota-test.sh [--quick] [--reuse-rootfs] [--pinholed FILE] [--seed N] [--cuts N] [--only LIST]
# --only: comma list of scenarios (refused,good,next,bad,cuts; default all);
# the bad 4.0.0 image is only built when `bad` is in it.
# --reuse-rootfs: skip mmdebstrap for the first build too (development; needs
# out/qemu-arm64/rootfs from an earlier --keep build). Later builds always reuse.
# OTA_HEALTH_TIMEOUT (default 150 s) goes into the test images' system.toml.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
board=qemu-arm64
first=()
args=()
bin=""
only=refused,good,next,bad,cuts
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reuse-rootfs) first=(--reuse-rootfs) ;;
        --pinholed) bin=$(readlink -f "$2"); shift ;;
        --seed|--cuts) args+=("$1" "$2"); shift ;;
        --only) only=$2; args+=("$1" "$2"); shift ;;
        --quick) quick=1; args+=("$1") ;;
        *) args+=("$1") ;;
    esac
    shift
done
# --reuse-rootfs with no rootfs behind it (the image test did not get that
# far): build one instead of failing on a missing directory.
if [ ${#first[@]} -gt 0 ] && [ ! -d "out/$board/rootfs/var" ]; then
    echo "ota-test: no out/$board/rootfs from an earlier --keep build; building the rootfs"
    first=()
fi
export OTA_HEALTH_TIMEOUT=${OTA_HEALTH_TIMEOUT:-150}
t0=$(date +%s)
[ -n "$bin" ] || bin=$(cross/build.sh | tail -n1)
# OTA_TOOL: a prebuilt host pinhole-bundle (image/lib/ota.sh uses it too)
tool=${OTA_TOOL:-$repo/target/release/pinhole-bundle}
[ -n "${OTA_TOOL:-}" ] || cargo build --release -q -p pinhole-ota --bin pinhole-bundle
build() { # version [image/build args]
    local v=$1; shift
    VERSION=$v image/build --keep "$@" --pinholed "$bin" "$board" >"out/ota-test/build-$v.log" 2>&1 \
        || { tail -n 30 "out/ota-test/build-$v.log" >&2; exit 1; }
    echo "out/pinhole-$board-$v"
}
mkdir -p out/ota-test
v1=$(build 1.0.0 "${first[@]}")
v2=$(build 2.0.0 --reuse-rootfs)
v3=$(build 3.0.0 --reuse-rootfs)  # the power cuts alternate 2.0.0 and 3.0.0
extra=(--next "$v3.phb")
# --quick never installs the bad bundle: do not build it.
if [ "$quick" = 0 ] && [[ ,$only, == *,bad,* ]]; then
    printf '#!/bin/sh\necho "pinholed: broken on purpose (OTA test bundle)" >&2\nexit 1\n' >out/ota-test/pinholed-broken
    chmod 755 out/ota-test/pinholed-broken
    bad=$(bin=$repo/out/ota-test/pinholed-broken build 4.0.0 --reuse-rootfs)
    extra+=(--bad "$bad.phb")
fi
w=out/$board
if [ ! -f out/ota-test/keys/forger.key ]; then "$tool" keygen --out out/ota-test/keys --name forger; fi
"$tool" create --key out/ota-test/keys/forger.key --board "$board" --version 5.0.0 \
    --boot-a "$w/boot_a.vfat" --boot-b "$w/boot_b.vfat" --root "$w/root.sqfs" -o out/ota-test/forged.phb
"$tool" create --key out/keys/dev.key --board rpi4 --version 5.0.0 \
    --boot-a "$w/boot_a.vfat" --boot-b "$w/boot_b.vfat" --root "$w/root.sqfs" -o out/ota-test/wrong-board.phb
t1=$(date +%s)
echo "ota-test: images and bundles built in $((t1 - t0))s; bundle $(stat -c %s "$v2.phb") bytes"
rc=0
python3 tests/qemu/ota_test.py "$v1.img" --good "$v2.phb" "${extra[@]}" \
    --forged out/ota-test/forged.phb --wrong-board out/ota-test/wrong-board.phb \
    --tool "$tool" --log-dir out/ota-test "${args[@]}" || rc=$?
echo "ota-test: QEMU part $(( $(date +%s) - t1 ))s, total $(( $(date +%s) - t0 ))s; console out/ota-test/ota-console.log"
exit "$rc"
