#!/usr/bin/env bash
# Reads QEMU's stderr and names the Debian package behind a missing file, so
# a failing start says what to install instead of only "failed to find".
#   qemu-system-aarch64 ... 2>err; tests/qemu/qemu-missing.sh < err
set -uo pipefail
rc=1
while IFS= read -r line; do
    f=$(printf '%s\n' "$line" | sed -n 's/.*failed to find romfile "\([^"]*\)".*/\1/p;s/.*[Cc]ould not open .\([^'"'"']*\).*/\1/p' | head -1)
    [ -n "$f" ] || continue
    base=$(basename "$f")
    pkg=$(dpkg -S "*/$base" 2>/dev/null | head -1 | cut -d: -f1)
    if [ -z "$pkg" ]; then
        case "$base" in
            efi-*.rom|pxe-*.rom) pkg="ipxe-qemu (or give the NIC romfile=, or -nic none)" ;;
            QEMU_EFI*|AAVMF*) pkg="qemu-efi-aarch64" ;;
            u-boot*) pkg="u-boot-qemu" ;;
            *) pkg="(unknown: apt-file search $base)" ;;
        esac
    fi
    echo "qemu: missing file $f; it comes from the Debian package $pkg"
    rc=0
done
exit "$rc"
