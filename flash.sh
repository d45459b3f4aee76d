#!/usr/bin/env bash
# Write a pinhole image to an SD card (or any block device), safely.
#
#   ./flash.sh [--yes] [--no-bmap] [--check-only] IMAGE DEVICE
#
# Refuses a device that is (or has a partition that is) mounted, used as
# swap, held by LVM/RAID/dm, or that holds the running system; refuses a
# partition (give the whole disk) and a device smaller than the image.
# Shows what is on the device and asks before writing unless --yes.
# Writes with bmaptool when it is installed (only the image's mapped blocks;
# the .bmap next to the image, or one made on the fly), otherwise with dd;
# then flushes and verifies by reading the written ranges back and comparing
# SHA-256 hashes. DEVICE may also be a regular file (tests, or writing an
# image copy); --check-only runs every safety check and writes nothing.
set -euo pipefail

yes=0 bmap=1 check_only=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -y|--yes) yes=1 ;;
        --no-bmap) bmap=0 ;;
        --check-only) check_only=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "flash.sh: unknown option $1" >&2; exit 2 ;;
        *) args+=("$1") ;;
    esac
    shift
done
[ ${#args[@]} -eq 2 ] || { echo "usage: flash.sh [--yes] [--no-bmap] [--check-only] IMAGE DEVICE" >&2; exit 2; }
img=${args[0]} target=${args[1]}
die() { echo "flash.sh: $*" >&2; exit 1; }
[ -f "$img" ] || die "no image file '$img'"
img=$(readlink -f "$img")
imgsize=$(stat -c %s "$img")
[ "$imgsize" -gt 0 ] || die "'$img' is empty"

# ---- what is the target? ----------------------------------------------------------
kind="file"
if [ -b "$target" ]; then
    kind=block
    dev=$(readlink -f "$target")
    name=$(basename "$dev")
    sys=/sys/class/block/$name
    [ -e "$sys" ] || die "$dev: not in /sys/class/block"
    [ -e "$sys/partition" ] && die "$dev is a partition; give the whole device (e.g. /dev/$(basename "$(readlink -f "$sys/..")"))"
    [ "$(cat "$sys/ro")" = 1 ] && die "$dev is read-only (write-protect switch?)"

    # every block device that lives on this disk: the disk and its partitions
    mapfile -t parts < <(lsblk -nrpo NAME "$dev")
    # the running system: the disk behind / (and /boot, /usr, /var if separate)
    for mp in / /boot /usr /var; do
        src=$(findmnt -no SOURCE --target "$mp" 2>/dev/null | head -n1 || true)
        [ -b "$src" ] || continue
        for p in "${parts[@]}"; do
            [ "$(readlink -f "$src")" = "$p" ] && die "$dev holds the running system ($mp is on $src)"
        done
        # the disk of that source, through dm/partition parents
        while read -r anc; do
            [ "$anc" = "$dev" ] && die "$dev holds the running system ($mp is on $src)"
        done < <(lsblk -nrpso NAME "$src" 2>/dev/null | tail -n +2)
    done
    for p in "${parts[@]}"; do
        mnts=$(findmnt -rno TARGET --source "$p" 2>/dev/null | paste -sd' ' || true)
        [ -n "$mnts" ] && die "$p is mounted on $mnts; unmount it first"
        grep -q "^$(readlink -f "$p") " /proc/swaps && die "$p is in use as swap"
        pn=$(basename "$p")
        if [ -d "/sys/class/block/$pn/holders" ] && [ -n "$(ls -A "/sys/class/block/$pn/holders")" ]; then
            die "$p is held by $(find "/sys/class/block/$pn/holders" -mindepth 1 -printf '%f ')(LVM/RAID/dm)"
        fi
    done
    devsize=$(blockdev --getsize64 "$dev")
    [ "$devsize" -ge "$imgsize" ] || die "$dev ($devsize bytes) is smaller than the image ($imgsize bytes)"
elif [ -e "$target" ] && [ ! -f "$target" ]; then
    die "'$target' is neither a block device nor a regular file"
else
    dev=$target
    mnt=$(findmnt -rno TARGET "$dev" 2>/dev/null || true)
    [ -n "$mnt" ] && die "$dev is a mount point"
fi

human() { numfmt --to=iec-i --suffix=B "$1"; }
echo "image:  $img ($(human "$imgsize"))"
if [ "$kind" = block ]; then
    echo "device: $dev ($(human "$devsize")) — everything on it will be overwritten:"
    lsblk -o NAME,SIZE,TYPE,FSTYPE,LABEL,MODEL,TRAN "$dev" | sed 's/^/    /'
else
    echo "target: regular file $dev$([ -e "$dev" ] && echo " ($(human "$(stat -c %s "$dev")"), will be overwritten)")"
fi
[ "$check_only" = 1 ] && { echo "checks passed (--check-only: nothing written)"; exit 0; }

if [ "$yes" != 1 ]; then
    [ -t 0 ] || die "not asking without a terminal: pass --yes to write"
    read -r -p "Type the name '$(basename "$dev")' to overwrite it: " answer
    [ "$answer" = "$(basename "$dev")" ] || die "not confirmed; nothing written"
fi

# ---- write ---------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ranges=$tmp/ranges     # "start_byte length" lines that were written
use_bmap=0
if [ "$bmap" = 1 ] && command -v bmaptool >/dev/null; then
    bm=""
    for c in "${img%.img}.bmap" "$img.bmap"; do [ -f "$c" ] && bm=$c && break; done
    if [ -z "$bm" ]; then
        bm=$tmp/image.bmap
        bmaptool -q create -o "$bm" "$img"
    fi
    use_bmap=1
fi
start=$(date +%s)
if [ "$use_bmap" = 1 ]; then
    echo "writing with bmaptool (mapped blocks only; bmap $bm)"
    [ "$kind" = file ] && [ ! -e "$dev" ] && : >"$dev"
    bmaptool copy --bmap "$bm" "$img" "$dev"
    # ranges from the bmap: <Range chksum="...">a-b</Range> in blocks of BlockSize
    bs=$(sed -n 's:.*<BlockSize> *\([0-9]*\) *</BlockSize>.*:\1:p' "$bm")
    sed -n 's:.*<Range[^>]*> *\([0-9-]*\) *</Range>.*:\1:p' "$bm" \
        | awk -F- -v bs="$bs" -v sz="$imgsize" '{ b = ($2 == "" ? $1 : $2); s = $1 * bs; l = (b - $1 + 1) * bs; if (s + l > sz) l = sz - s; print s, l }' >"$ranges"
else
    echo "writing with dd"
    oflag=""; [ "$kind" = block ] && oflag="oflag=direct"
    # shellcheck disable=SC2086 # empty or one flag
    dd if="$img" of="$dev" bs=4M conv=fsync,notrunc $oflag status=progress
    echo "0 $imgsize" >"$ranges"
fi
sync
[ "$kind" = block ] && blockdev --flushbufs "$dev"
echo "written in $(( $(date +%s) - start ))s"

# ---- verify: read back what was written, compare hashes --------------------------------
echo "verifying $(awk '{ n += $2 } END { printf "%d", n }' "$ranges" | numfmt --to=iec-i --suffix=B) in $(wc -l <"$ranges") range(s)"
iflag=""; [ "$kind" = block ] && iflag=",direct"
hash_ranges() { # file
    while read -r s l; do
        dd if="$1" bs=4M iflag="skip_bytes,count_bytes$2" skip="$s" count="$l" status=none
    done <"$ranges" | sha256sum | cut -d' ' -f1
}
want=$(hash_ranges "$img" "")
got=$(hash_ranges "$dev" "$iflag")
if [ "$want" = "$got" ]; then
    echo "verified: sha256 $want"
else
    die "VERIFY FAILED: image $want, device $got"
fi
[ "$kind" = block ] && { blockdev --rereadpt "$dev" 2>/dev/null || true; }
echo "done: $dev"
