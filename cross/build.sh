#!/usr/bin/env bash
# Build pinholed as a fully static aarch64 ELF with Debian's rustc and the
# arm64 std from libstd-rust-web-dev:arm64, and the libcamera helper
# (pinhole-libcamera) as a dynamically linked aarch64 ELF against Debian's
# libcamera-dev:arm64 (libcamera is C++ with run-time IPA modules: it cannot
# be static; docs/cameras.md). Installs its own toolchain (idempotent;
# skipped when everything is present). Prints the helper's path, then
# pinholed's path on the last line (callers take `tail -n1`).
#
#   cross/build.sh [--no-install] [--no-helper] [--profile release|dev] [-- extra cargo args]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
target=aarch64-unknown-linux-gnu
profile=release
install=1
helper=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --no-helper) helper=0 ;;
        --profile) profile=$2; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "cross/build.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'cross: %s\n' "$*" >&2; }

# Host packages (amd64) and the arm64 ones: the std for the target, and
# libcamera's headers and shared library for the helper (~20 small packages).
host_pkgs=(rustc-web cargo-web gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
           libc6-dev-arm64-cross libclang1-14 libclang-common-14-dev
           qemu-user-static binfmt-support file pkg-config)
# libopus-dev:arm64: its libopus.a is linked into the static pinholed
# (the Opus audio encoder; docs/audio.md).
arm64_pkgs=(libstd-rust-web-dev:arm64 libopus-dev:arm64)
[ "$helper" = 1 ] && arm64_pkgs+=(libcamera-dev:arm64)

missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$p"
    done
}

ensure_toolchain() {
    local missing
    mapfile -t missing < <(missing_pkgs "${host_pkgs[@]}" "${arm64_pkgs[@]}")
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || { log "missing packages (need root to install): ${missing[*]}"; exit 1; }
    log "installing: ${missing[*]}"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
    fi
    local apt=(apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

[ "$install" = 1 ] && ensure_toolchain

# rustup's shims come first on PATH: name Debian's tools by absolute path.
export RUSTC=/usr/bin/rustc
cargo=/usr/bin/cargo
[ -x "$cargo" ] || cargo=$(command -v cargo)
[ -x "$RUSTC" ] || { log "no /usr/bin/rustc (install rustc-web)"; exit 1; }
[ -d /usr/lib/rustlib/$target ] || [ -d "$($RUSTC --print sysroot)/lib/rustlib/$target" ] \
    || { log "no $target std (install libstd-rust-web-dev:arm64)"; exit 1; }

# A global RUSTFLAGS would override the target rustflags below.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
T=AARCH64_UNKNOWN_LINUX_GNU
t=aarch64_unknown_linux_gnu
export "CARGO_TARGET_${T}_LINKER=aarch64-linux-gnu-gcc"
export "CARGO_TARGET_${T}_RUSTFLAGS=-C target-feature=+crt-static"
export "CARGO_TARGET_${T}_RUNNER=qemu-aarch64-static"
export "CC_${t}=aarch64-linux-gnu-gcc" "CXX_${t}=aarch64-linux-gnu-g++" "AR_${t}=aarch64-linux-gnu-ar"
export "BINDGEN_EXTRA_CLANG_ARGS_${t}=--target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-14/lib}
export PKG_CONFIG_ALLOW_CROSS=1
# Opus (audiopus_sys): Debian's arm64 libopus.a, linked statically.
export OPUS_STATIC=1 OPUS_NO_PKG=1 OPUS_LIB_DIR=/usr/lib/aarch64-linux-gnu
export CARGO_TARGET_DIR="$repo/target-aarch64"
# Reproducible: no build path or time baked in beyond what cargo already pins.
# The time is that of the last Cargo.lock change: what the C/C++ compilers see
# (OpenH264's bundled sources) changes only with it, and cc reruns on a new
# SOURCE_DATE_EPOCH, so a per-commit time rebuilt OpenH264 on every commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct -- Cargo.lock 2>/dev/null || echo 0)}

# The helper: dynamic (no crt-static), in its own target dir so the two
# builds' different flags do not rebuild each other's dependencies.
# libcamera.so's own dependencies are found through -rpath-link.
build_helper() (
    start=$(date +%s)
    export CARGO_TARGET_DIR="$repo/target-aarch64-dyn"
    export "CARGO_TARGET_${T}_RUSTFLAGS=-L /usr/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath-link,/usr/lib/aarch64-linux-gnu"
    export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
    (cd "$repo" && "$cargo" build --locked --profile "$profile" --target "$target" \
        -p pinhole-libcamera --features libcamera ${extra[@]+"${extra[@]}"}) >&2
    hbin="$CARGO_TARGET_DIR/$target/$dir/pinhole-libcamera"
    [ -x "$hbin" ] || { log "no helper at $hbin"; exit 1; }
    log "helper built in $(( $(date +%s) - start ))s, $(stat -c %s "$hbin") bytes"
    echo "$hbin"
)

log "$($RUSTC --version), $($cargo --version)"
dir=$profile; [ "$profile" = dev ] && dir=debug
[ "$helper" = 1 ] && build_helper
start=$(date +%s)
(cd "$repo" && "$cargo" build --locked --profile "$profile" --target "$target" \
    -p pinholed ${extra[@]+"${extra[@]}"}) >&2
bin="$CARGO_TARGET_DIR/$target/$dir/pinholed"
[ -x "$bin" ] || { log "no binary at $bin"; exit 1; }
log "built in $(( $(date +%s) - start ))s, $(stat -c %s "$bin") bytes"
echo "$bin"

