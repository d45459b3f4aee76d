#!/usr/bin/env bash
# What CI checks of the .deb without installing it (tests/deb/run.sh installs
# it in an arm64 root, ~12 min, not in CI): the control fields, the
# maintainer scripts, the files the unit and nginx need, an aarch64 static
# pinholed, and the UI.
#   tests/deb/contents.sh FILE.deb
set -euo pipefail
deb=${1:?usage: tests/deb/contents.sh FILE.deb}
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = pinhole ] && ok "Package: pinhole" || bad "Package: $(field Package)"
[ "$(field Architecture)" = arm64 ] && ok "Architecture: arm64" || bad "Architecture: $(field Architecture)"
case "$(field Depends)" in *nginx*systemd*) ok "Depends: $(field Depends)" ;; *) bad "Depends: $(field Depends)" ;; esac
list=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
for f in /usr/bin/pinholed /usr/lib/systemd/system/pinholed.service \
    /usr/lib/systemd/system/run-pinhole-hls.mount /usr/lib/sysusers.d/pinhole.conf \
    /usr/lib/tmpfiles.d/pinhole.conf /usr/share/pinhole/system.toml \
    /usr/share/pinhole/config.toml /etc/nginx/sites-available/pinhole \
    /usr/share/pinhole/www/index.html /usr/share/pinhole/www/player/webrtc.js; do
    grep -qx "$f" <<<"$list" && ok "$f" || bad "missing $f"
done
# Owned by root whoever built it (--root-owner-group).
others=$(dpkg-deb -c "$deb" | awk '$2 != "root/root"' | head -3)
[ -z "$others" ] && ok "every file root/root" || bad "not root-owned: $others"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$deb" "$tmp/DEBIAN"
for s in postinst prerm postrm; do
    [ -x "$tmp/DEBIAN/$s" ] && sh -n "$tmp/DEBIAN/$s" && ok "DEBIAN/$s (sh -n)" || bad "DEBIAN/$s"
done
grep -qx /etc/nginx/sites-available/pinhole "$tmp/DEBIAN/conffiles" && ok "nginx site is a conffile" || bad "conffiles"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/pinholed >"$tmp/pinholed"
file -b "$tmp/pinholed" | grep -q 'ARM aarch64.*statically linked' && ok "pinholed: static aarch64" \
    || bad "pinholed: $(file -b "$tmp/pinholed")"
echo "deb contents: $(basename "$deb"), $(stat -c %s "$deb") bytes: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
