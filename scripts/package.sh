#!/usr/bin/env bash
# Build the vendd Debian package (.deb) from a staging tree with dpkg-deb alone: no cargo-deb,
# nothing extra to compile.
#
#   scripts/package.sh --release [--arch amd64|arm64] [--out DIR] [--compression xz|gzip|none]
#   scripts/package.sh --binaries DIR [--arch amd64|arm64] [--out DIR] [--compression ...]
#
# --release       cargo build --release --locked --bins (with --target for a foreign --arch)
#                 and package target/[TRIPLE/]release/{vendd,vendctl}
# --binaries DIR  package DIR/vendd and DIR/vendctl as they are (e.g. target/debug, or the
#                 output of `cross`/`cargo zigbuild`); nothing is built
# --arch          Debian architecture (default: this machine's); the binaries' ELF machine
#                 must match it
# --out DIR       where the .deb goes (default: target/debian); the path is printed last
# --compression   dpkg-deb -Z (default xz; the test uses none)
#
# Layout: /usr/bin/{vendd,vendctl} (stripped when a strip for the arch exists),
# /lib/systemd/system/vendd.service, /usr/lib/systemd/user/vendd-kiosk.service,
# /etc/vendd/vendd.toml (conffile: config/example-6x10.toml adapted for a Pi),
# /usr/lib/vendd/libvosk.so (when the binaries need it), /usr/share/vendd/{pinmaps,models,
# voice,check-pi.sh}, /usr/share/doc/vendd/. The maintainer scripts are packaging/deb/.
#
# libvosk: build.rs gives the binaries a RUNPATH into the build tree. With patchelf the
# packaged copies get RUNPATH=/usr/lib/vendd; without it the package ships
# /etc/ld.so.conf.d/vendd.conf (and an ldconfig trigger) instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG=vendd

die() { echo "package: $*" >&2; exit 1; }
note() { echo "package: $*" >&2; }

MODE=""
BINDIR=""
ARCH=""
OUT=""
COMPRESSION=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --release) MODE=release ;;
        --binaries) MODE=binaries; BINDIR="${2:?--binaries needs a directory}"; shift ;;
        --arch) ARCH="${2:?--arch needs amd64 or arm64}"; shift ;;
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --compression) COMPRESSION="${2:?--compression needs xz, gzip or none}"; shift ;;
        -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[ -n "$MODE" ] || die "give --release or --binaries DIR (see --help)"
case "$COMPRESSION" in xz | gzip | none) ;; *) die "--compression: xz, gzip or none" ;; esac

for tool in dpkg-deb readelf sha256sum md5sum; do
    command -v "$tool" >/dev/null || die "$tool is needed (dpkg, binutils, coreutils)"
done

HOST_ARCH="$(dpkg --print-architecture 2>/dev/null || true)"
if [ -z "$HOST_ARCH" ]; then
    case "$(uname -m)" in
        x86_64) HOST_ARCH=amd64 ;;
        aarch64) HOST_ARCH=arm64 ;;
        *) HOST_ARCH="$(uname -m)" ;;
    esac
fi
ARCH="${ARCH:-$HOST_ARCH}"
case "$ARCH" in
    amd64) TRIPLE=x86_64-unknown-linux-gnu; ELF_MACHINE="X86-64" ;;
    arm64) TRIPLE=aarch64-unknown-linux-gnu; ELF_MACHINE="AArch64" ;;
    *) die "--arch: amd64 or arm64, not $ARCH" ;;
esac

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$TARGET_DIR/debian}"

if [ "$MODE" = release ]; then
    if [ "$ARCH" = "$HOST_ARCH" ]; then
        (cd "$ROOT" && cargo build --release --locked --bins)
        BINDIR="$TARGET_DIR/release"
    else
        # Needs the Rust target, a cross linker and arm64 libasound/libvosk: docs/install.md.
        (cd "$ROOT" && cargo build --release --locked --bins --target "$TRIPLE")
        BINDIR="$TARGET_DIR/$TRIPLE/release"
    fi
fi
BINDIR="$(cd "$BINDIR" && pwd)" || die "no directory $BINDIR"

elf_machine() { readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p'; }
needs() { readelf -d "$1" 2>/dev/null | grep -q "Shared library: \[$2\]"; }

for b in vendd vendctl; do
    [ -x "$BINDIR/$b" ] || die "$BINDIR/$b is missing or not executable"
    m="$(elf_machine "$BINDIR/$b")"
    case "$m" in
        *"$ELF_MACHINE"*) ;;
        *) die "$BINDIR/$b is built for '$m', not $ARCH ($ELF_MACHINE)" ;;
    esac
done

VERSION="$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
[ -n "$VERSION" ] || die "no version in Cargo.toml"
DEB_VERSION="${VERSION//-/\~}"   # 0.2.0-rc.1 → 0.2.0~rc.1 (sorts before 0.2.0)

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
umask 022
chmod 0755 "$STAGE"

put() { # put MODE SRC DEST (DEST relative to the package root)
    install -D -m "$1" "$2" "$STAGE/$3"
}

# --- binaries -------------------------------------------------------------------------------
put 0755 "$BINDIR/vendd" usr/bin/vendd
put 0755 "$BINDIR/vendctl" usr/bin/vendctl
STRIP=""
if [ "$ARCH" = "$HOST_ARCH" ]; then
    STRIP="$(command -v strip || true)"
else
    STRIP="$(command -v "${TRIPLE%%-unknown-*}-linux-gnu-strip" || true)"
fi
if [ -n "$STRIP" ]; then
    "$STRIP" --strip-all "$STAGE/usr/bin/vendd" "$STAGE/usr/bin/vendctl"
else
    note "no strip for $ARCH: binaries packaged with their symbols"
fi

# --- libvosk --------------------------------------------------------------------------------
VOSK=no
LIBDIRS="usr/lib/vendd"
if needs "$STAGE/usr/bin/vendd" libvosk.so || needs "$STAGE/usr/bin/vendctl" libvosk.so; then
    VOSK=yes
    lib="${VOSK_LIB_DIR:-$ROOT/models/cache/vosk/lib}/libvosk.so"
    [ -f "$lib" ] || die "the binaries need libvosk.so, but $lib is missing (scripts/vosk.sh fetches it; for arm64 run it on an arm64 machine or see docs/install.md)"
    case "$(elf_machine "$lib")" in
        *"$ELF_MACHINE"*) ;;
        *) die "$lib is for '$(elf_machine "$lib")', not $ARCH" ;;
    esac
    put 0644 "$lib" usr/lib/vendd/libvosk.so
    if command -v patchelf >/dev/null; then
        for b in vendd vendctl; do
            if needs "$STAGE/usr/bin/$b" libvosk.so; then
                patchelf --set-rpath /usr/lib/vendd "$STAGE/usr/bin/$b"
            else
                patchelf --remove-rpath "$STAGE/usr/bin/$b"
            fi
        done
        LIBPATH=runpath
    else
        note "patchelf not found: shipping /etc/ld.so.conf.d/vendd.conf for /usr/lib/vendd (the binaries keep their build-tree RUNPATH, unused on the target)"
        mkdir -p "$STAGE/etc/ld.so.conf.d"
        printf '# libvosk for vendd\n/usr/lib/vendd\n' >"$STAGE/etc/ld.so.conf.d/vendd.conf"
        chmod 0644 "$STAGE/etc/ld.so.conf.d/vendd.conf"
        LIBPATH=ld.so.conf
    fi
fi

# --- systemd units --------------------------------------------------------------------------
put 0644 "$ROOT/systemd/vendd.service" lib/systemd/system/vendd.service
put 0644 "$ROOT/systemd/vendd-kiosk.service" usr/lib/systemd/user/vendd-kiosk.service

# --- /usr/share/vendd -----------------------------------------------------------------------
for m in "$ROOT"/hardware/pinmap-*.toml; do
    put 0644 "$m" "usr/share/vendd/pinmaps/$(basename "$m")"
done
put 0755 "$ROOT/packaging/deb/check-pi.sh" usr/share/vendd/check-pi.sh
put 0644 "$ROOT/models/manifest.toml" usr/share/vendd/models/manifest.toml
MODELS_DIR="${VENDD_MODELS_DIR:-$ROOT/models/cache}"
models=0
while read -r file sha; do
    src="$MODELS_DIR/$file"
    if [ ! -f "$src" ]; then
        note "face model $file not in $MODELS_DIR (scripts/models.sh): packaged without it, face pay stays off"
        continue
    fi
    [ "$(sha256sum "$src" | cut -d' ' -f1)" = "$sha" ] || die "$src does not have the sha256 of models/manifest.toml"
    put 0644 "$src" "usr/share/vendd/models/$file"
    models=$((models + 1))
done < <(awk -F'"' '/^file *=/ { f = $2 } /^sha256 *=/ { print f, $2 }' "$ROOT/models/manifest.toml")
if [ -f "$MODELS_DIR/voice/manifest.tsv" ]; then
    mkdir -p "$STAGE/usr/share/vendd/voice"
    cp -R "$MODELS_DIR/voice/." "$STAGE/usr/share/vendd/voice/"
    find "$STAGE/usr/share/vendd/voice" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
else
    note "no voice clips in $MODELS_DIR/voice (scripts/voice-clips.sh): the kiosk will be silent"
fi

# --- /etc/vendd/vendd.toml: the example, adapted for a Raspberry Pi -------------------------
CONF="$STAGE/etc/vendd/vendd.toml"
mkdir -p "$STAGE/etc/vendd"
{
    echo "# Installed by the vendd package as /etc/vendd/vendd.toml (a conffile: your edits survive"
    echo "# upgrades). Made from config/example-6x10.toml for a Raspberry Pi: rpi backend with the"
    echo "# 6x10 pin map, PN532 on SPI0, a V4L2 camera, models and voice clips under /usr/share/vendd,"
    echo "# the device secret written by postinst. Set [machine], [planogram], [merchant_qr] and"
    echo "# [mqtt] for your machine, then: vendd check-config /etc/vendd/vendd.toml"
    echo "#"
    sed -e 's|^# dir = "/var/lib/vendd"|dir = "/var/lib/vendd"|' \
        -e 's|^# device_secret_file = "/etc/vendd/device.key"|device_secret_file = "/etc/vendd/device.key"   # written once by the package|' \
        -e 's|^backend = "sim" |backend = "rpi" |' \
        -e 's|^# pinmap = "/etc/vendd/pinmap-6x10-spiral.toml" *#.*|pinmap = "/usr/share/vendd/pinmaps/pinmap-6x10-spiral.toml"   # copy to /etc/vendd to change it|' \
        -e 's|^reader = "sim" |reader = "spi" |' \
        -e 's|^source = "sim" |source = "v4l2"|' \
        -e 's|^# device = 0 |device = 0   |' \
        -e 's|^models = "models/cache" *#|models = "/usr/share/vendd/models"   #|' \
        -e 's|^clips = "models/cache/voice"|clips = "/usr/share/vendd/voice"|' \
        -e 's|^models = { ko = "models/cache/vosk/model-ko" }|models = { ko = "/var/lib/vendd/vosk/model-ko" }|' \
        "$ROOT/config/example-6x10.toml"
} >"$CONF"
chmod 0644 "$CONF"
# Every adaptation must have happened: a changed example fails here, not on the Pi.
for want in '^dir = "/var/lib/vendd"' '^device_secret_file = "/etc/vendd/device.key"' \
    '^backend = "rpi"' '^pinmap = "/usr/share/vendd/pinmaps/pinmap-6x10-spiral.toml"' \
    '^reader = "spi"' '^source = "v4l2"' '^device = 0' '^models = "/usr/share/vendd/models"' \
    '^clips = "/usr/share/vendd/voice"' '^models = { ko = "/var/lib/vendd/vosk/model-ko" }'; do
    grep -q "$want" "$CONF" || die "config/example-6x10.toml changed: no line /$want/ in the Pi config; update scripts/package.sh"
done
if grep -nE '"(models|hardware)/' "$CONF"; then
    die "the Pi config still has a path into the source tree (above)"
fi

# --- docs -----------------------------------------------------------------------------------
put 0644 "$ROOT/README.md" usr/share/doc/vendd/README.md
put 0644 "$ROOT/packaging/deb/copyright" usr/share/doc/vendd/copyright
put 0644 "$ROOT/hardware/README.md" usr/share/doc/vendd/hardware.md
for d in install fleet; do
    if [ -f "$ROOT/docs/$d.md" ]; then put 0644 "$ROOT/docs/$d.md" "usr/share/doc/vendd/$d.md"; fi
done

# --- DEBIAN/ --------------------------------------------------------------------------------
mkdir -p "$STAGE/DEBIAN"
for s in postinst prerm postrm; do
    put 0755 "$ROOT/packaging/deb/$s" "DEBIAN/$s"
done
echo /etc/vendd/vendd.toml >"$STAGE/DEBIAN/conffiles"
[ "$VOSK" = yes ] && [ "$LIBPATH" = ld.so.conf ] && echo "activate-noawait ldconfig" >"$STAGE/DEBIAN/triggers"

# Depends from what the ELF files need.
glibc="$(for f in "$STAGE"/usr/bin/* "$STAGE"/usr/lib/vendd/*.so; do
    [ -f "$f" ] && readelf -V "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*'
done | sed 's/GLIBC_//' | sort -uV | tail -n1)"
depends="libc6 (>= ${glibc:-2.31}), libgcc-s1"
needs "$STAGE/usr/bin/vendd" libasound.so.2 && depends="$depends, libasound2 (>= 1.0.16) | libasound2t64"
[ "$VOSK" = yes ] && depends="$depends, libstdc++6"
depends="$depends, adduser"

MAINTAINER="${DEBFULLNAME:-vendd maintainers} <${DEBEMAIL:-vendd@example.invalid}>"
size="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $PKG
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends
Recommends: chromium | chromium-browser, curl
Suggests: mosquitto, espeak-ng
Section: misc
Priority: optional
Homepage: https://example.invalid/vendd
Description: controller daemon for an unattended vending machine or kiosk
 vendd drives the dispensing mechanism of a vending machine on a Raspberry Pi
 (GPIO motor matrix, drop beam, door, lock), takes card, code and face
 payments, keeps a crash-safe journal and reports to the operator over MQTT.
 The kiosk page is served on loopback and shown by Chromium in kiosk mode
 (the vendd-kiosk user unit). vendctl reads the journal, exports sales and
 DEX files and sends signed remote commands.
EOF
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"
[ -f "$STAGE/DEBIAN/triggers" ] && chmod 0644 "$STAGE/DEBIAN/triggers"

mkdir -p "$OUT"
DEB="$(cd "$OUT" && pwd)/${PKG}_${DEB_VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMPRESSION" --build "$STAGE" "$DEB" >/dev/null
note "$PKG $DEB_VERSION $ARCH: libvosk ${VOSK}${LIBPATH:+ ($LIBPATH)}, $models face model(s)"
echo "$DEB"
