#!/usr/bin/env bash
# The .deb installed into a Debian arm64 root (trixie, mmdebstrap, run
# through qemu-user binfmt), with a stand-in `rpicam-vid` that writes an
# H.264 file frame by frame at 30 fps: the package's postinst runs, `auto`
# finds rpicam-vid, and the unit's own ExecStart line, run in the root as the
# package's user with the package's nginx site in front, serves video:
# /api/status says source pipe (rpicam-vid) with frames, /stream.mp4 through
# nginx is H.264 to ffprobe. Needs root.
#
#   tests/deb/run.sh [--deb FILE] [--pinholed FILE]
#
# Without --deb it builds one (image/deb/build, cross-building pinholed
# unless --pinholed is given). Output: out/deb-test/ (root, logs).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
deb="" pinholed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb=$(readlink -f "$2"); shift ;;
        --pinholed) pinholed=$(readlink -f "$2"); shift ;;
        *) echo "tests/deb/run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || { echo "tests/deb/run.sh: needs root (mmdebstrap, chroot)" >&2; exit 1; }
t0=$(date +%s)
need=(mmdebstrap qemu-user-static binfmt-support arch-test ffmpeg curl python3)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
# trixie's binaries use pointer authentication, which qemu-user's default CPU
# emulates slowly: a core without it (image/build does the same)
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
if [ -z "$deb" ]; then
    args=()
    [ -n "$pinholed" ] && args=(--pinholed "$pinholed")
    deb=$(image/deb/build "${args[@]}" | tail -n1)
fi
echo "deb-test: $deb ($(stat -c %s "$deb") bytes)"
dpkg-deb -c "$deb" | awk '{print "  " $NF}'

work=$repo/out/deb-test
root=$work/root
cache=${PINHOLE_APT_CACHE:-$repo/out/cache/apt}
mkdir -p "$work" "$cache"
rm -rf "$root"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$root/run/nginx.pid" ] && kill "$(cat "$root/run/nginx.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$root"
}
trap cleanup EXIT

# The stand-in camera app: the fixture's access units, one file each, then
# a script that writes them at 30 fps, forever, whatever its arguments.
frames=$work/frames
rm -rf "$frames"; mkdir -p "$frames"
python3 - crates/pinhole-media/testdata/x264_baseline_320x240_30fps_gop30.h264 "$frames" <<'PY'
import sys
data, out = open(sys.argv[1], 'rb').read(), sys.argv[2]
starts, i = [], 0
while (i := data.find(b'\0\0\1', i)) >= 0:
    starts.append(i + 3); i += 3
aus, prev_slice = [], False
for n, s in enumerate(starts):
    t = data[s] & 0x1f
    slice_ = t in (1, 5)
    # a new picture: at an SPS, or a slice right after a slice
    if t == 7 or (slice_ and prev_slice) or not aus:
        aus.append(s - 4 if s >= 4 and data[s - 4] == 0 else s - 3)
    prev_slice = slice_
aus.append(len(data))
for k in range(len(aus) - 1):
    open(f'{out}/{k:04d}.h264', 'wb').write(data[aus[k]:aus[k + 1]])
print(f'deb-test: stand-in frames: {len(aus) - 1}')
PY

echo "---- mmdebstrap trixie arm64 + nginx, then the .deb with apt ----"
# shellcheck disable=SC2016 # $1 is mmdebstrap's
mmdebstrap --mode=root --variant=minbase --architectures=arm64 \
    --include=systemd,nginx,ca-certificates \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
    --customize-hook="copy-in '$deb' /tmp" \
    --customize-hook='chroot "$1" apt-get install -y /tmp/'"$(basename "$deb")" \
    --customize-hook='mkdir -p "$1/usr/share/pinhole-test"' \
    --customize-hook="copy-in '$frames' /usr/share/pinhole-test" \
    trixie "$root" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 \
    || { tail -40 "$work/mmdebstrap.log"; exit 1; }
grep -E 'Setting up pinhole|pinhole' "$work/mmdebstrap.log" | tail -5 || true
t1=$(date +%s)

fail=0
check() { # what condition...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
check "postinst made user pinhole in group video" grep -q '^video:.*pinhole' "$root/etc/group"
check "www-data is in group pinhole" grep -q '^pinhole:.*www-data' "$root/etc/group"
check "the unit is enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/pinholed.service"
check "the tmpfs is enabled" test -L "$root/etc/systemd/system/local-fs.target.wants/run-pinhole-hls.mount"
check "the tmpfs is owned by pinhole" grep -q "uid=$(chroot "$root" id -u pinhole)," \
    "$root/etc/systemd/system/run-pinhole-hls.mount.d/owner.conf"
check "the nginx site is enabled, Debian's default is not" \
    test -L "$root/etc/nginx/sites-enabled/pinhole" -a ! -e "$root/etc/nginx/sites-enabled/default"
check "the state dir exists with a config" test -f "$root/var/lib/pinhole/config.toml"

# perl-base is essential (in every root); one process, one write per frame
# (a shell loop would exec cat and sleep per frame, slow under qemu-user).
cat >"$root/usr/local/bin/rpicam-vid" <<'PL'
#!/usr/bin/perl
# stand-in for Raspberry Pi's rpicam-vid: the fixture at 30 fps, forever
print STDERR "rpicam-vid (stand-in) @ARGV\n";
my @frames = map { local $/; open(my $h, '<:raw', $_) or die "$_: $!"; <$h> }
    sort glob('/usr/share/pinhole-test/frames/*.h264');
binmode STDOUT;
$| = 1;
while (1) {
    for (@frames) { print $_ or exit 0; select(undef, undef, undef, 1 / 30); }
}
PL
chmod 0755 "$root/usr/local/bin/rpicam-vid"

echo "---- the unit's ExecStart in the root, as pinhole; nginx with the package's site ----"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The root shares the host's network: the site on a free loopback port.
sed -i "s/listen 80 default_server;/listen 127.0.0.1:$port default_server;/; /listen \[::\]:80/d" \
    "$root/etc/nginx/sites-available/pinhole"
install -d -o "$(chroot "$root" id -u pinhole)" -g "$(chroot "$root" id -g pinhole)" -m 0750 \
    "$root/run/pinhole" "$root/run/pinhole/hls"
exec_start=$(sed -n 's/^ExecStart=//p' "$root/usr/lib/systemd/system/pinholed.service")
echo "ExecStart: $exec_start"
# shellcheck disable=SC2086 # the unit's command line, split as systemd does here
chroot --userspec=pinhole:pinhole --groups=video "$root" /usr/bin/env -i \
    PATH=/usr/local/bin:/usr/bin:/bin RUST_LOG=info $exec_start >"$work/pinholed.log" 2>&1 &
pids+=($!)
chroot "$root" /usr/sbin/nginx -t >"$work/nginx.log" 2>&1 || { cat "$work/nginx.log"; exit 1; }
chroot "$root" /usr/sbin/nginx >>"$work/nginx.log" 2>&1

status=""
for _ in $(seq 1 150); do
    status=$(curl -sf "http://127.0.0.1:$port/api/status" || true)
    grep -q '"frames":[1-9]' <<<"$status" && break
    sleep 0.2
done
echo "status: ${status:0:400}"
# (/api/status hides the source's detail from a client without a login)
check "auto runs rpicam-vid through the pipe source" grep -q '"kind":"pipe"' <<<"$status"
check "pinholed says auto found rpicam-vid" grep -q 'auto: /usr/local/bin/rpicam-vid found' "$work/pinholed.log"
check "frames flow" grep -q '"frames":[1-9]' <<<"$status"
probe=$(timeout 60 ffprobe -v error -rw_timeout 20000000 -read_intervals '%+2' \
    -show_entries stream=codec_name,width,height -of csv=p=0 "http://127.0.0.1:$port/stream.mp4" 2>&1 || true)
echo "ffprobe /stream.mp4 through nginx: $probe"
check "nginx serves H.264 320x240 (/stream.mp4)" grep -q '^h264,320,240' <<<"$probe"
grep -m3 -i 'auto\|rpicam' "$work/pinholed.log" || true
t2=$(date +%s)
echo "deb-test: root $((t1 - t0))s, service check $((t2 - t1))s; logs in $work"
[ "$fail" = 0 ] || { tail -20 "$work/pinholed.log"; exit 1; }
echo "deb-test: passed"
