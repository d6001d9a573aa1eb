#!/usr/bin/env bash
# Renders the kiosk's voice clips with espeak-ng: every fixed segment of every spoken
# catalogue entry (assets/i18n/catalog.toml), the number words, currency words and letters,
# in English (voice en-us) and Mandarin (voice cmn-latn-pinyin, from tone-numbered pinyin,
# because Debian's espeak-ng misreads hanzi).
#
#   scripts/voice-clips.sh [--out DIR] [--list FILE] [--force]
#
#   --out DIR    where to write <DIR>/<lang>/<clip>.wav (default models/cache/voice, or
#                $VOICE_CLIPS_DIR)
#   --list FILE  the clip list (lang, name, voice, text; tab-separated) instead of running
#                `cargo run -q --example voice_clip_list`
#   --force      render every clip again
#
# The clip list comes from the Rust code that composes messages (voice::compose::clip_texts),
# so the clips cannot drift from what the speaker asks for. Output: 16 kHz mono 16-bit WAV,
# peak-normalised to -3 dBFS, leading and trailing silence trimmed. Idempotent:
# <DIR>/manifest.tsv records a hash of each clip's voice, settings and text; a clip is
# rendered again only when that changes. Clips no longer in the list are deleted.
#
# Needs: espeak-ng, sox (apt-get install espeak-ng sox).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

out="${VOICE_CLIPS_DIR:-$root/models/cache/voice}"
list=""
force=0
while (($#)); do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --list) list="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^# Needs/p' "$0"; exit 0 ;;
    *) echo "voice-clips: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

for tool in espeak-ng sox sha256sum; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "voice-clips: $tool not found; install it: apt-get install espeak-ng sox" >&2
    exit 1
  fi
done

# Rendering settings. Changing any of them (or RENDER_VERSION) renders every clip again.
RENDER_VERSION=2
export EN_SPEED=160 ZH_SPEED=150 RATE=16000
settings="v$RENDER_VERSION en$EN_SPEED zh$ZH_SPEED r$RATE $(espeak-ng --version | awk '{print $4}')"

start=$(date +%s.%N)
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [[ -z "$list" ]]; then
  (cd "$root" && cargo run -q --example voice_clip_list) >"$tmp/list.tsv"
  list="$tmp/list.tsv"
fi
if [[ ! -s "$list" ]]; then
  echo "voice-clips: the clip list is empty" >&2
  exit 1
fi

# Previous hashes.
declare -A old=()
if [[ -f "$out/manifest.tsv" && $force -eq 0 ]]; then
  while IFS=$'\t' read -r key hash; do
    old["$key"]="$hash"
  done <"$out/manifest.tsv"
fi

# One hash per clip line: render settings + lang, name, voice and text.
awk -F'\t' -v s="$settings" '{ print s "\t" $0 }' "$list" | while IFS= read -r line; do
  printf '%s' "$line" | sha256sum | cut -c1-16
done >"$tmp/hashes"

: >"$tmp/jobs"
: >"$tmp/manifest"
declare -A wanted=()
total=0
while IFS=$'\t' read -r lang name voice text <&3 && read -r hash <&4; do
  total=$((total + 1))
  if [[ ! "$lang/$name" =~ ^(en|zh)/[a-z0-9._]+$ ]]; then
    echo "voice-clips: bad clip name '$lang/$name'" >&2
    exit 1
  fi
  wanted["$lang/$name.wav"]=1
  mkdir -p "$out/$lang"
  if [[ -f "$out/$lang/$name.wav" && "${old[$lang/$name]:-}" == "$hash" ]]; then
    continue
  fi
  rm -f "$out/$lang/$name.wav"
  printf '%s\t%s\t%s\t%s\n' "$lang" "$name" "$voice" "$text" >>"$tmp/jobs"
done 3<"$list" 4<"$tmp/hashes"

render_one() {
  local lang name voice text speed dest raw
  IFS=$'\t' read -r lang name voice text <<<"$1"
  speed="$EN_SPEED"
  [[ "$voice" == cmn* ]] && speed="$ZH_SPEED"
  dest="$OUT/$lang/$name.wav"
  raw="$(mktemp --suffix=.wav)"
  if espeak-ng -v "$voice" -s "$speed" -w "$raw" "$text" &&
    sox -V1 "$raw" -c 1 -b 16 -e signed-integer "$dest.part.wav" \
      gain -n -3 rate "$RATE" silence 1 0.005 -60d reverse silence 1 0.005 -60d reverse; then
    mv "$dest.part.wav" "$dest"
  else
    echo "voice-clips: failed to render $lang/$name: $text" >&2
    rm -f "$dest.part.wav"
  fi
  rm -f "$raw"
}
export -f render_one
export OUT="$out"

jobs=$(wc -l <"$tmp/jobs")
if ((jobs > 0)); then
  tr '\n' '\0' <"$tmp/jobs" | xargs -0 -P "$(nproc)" -I{} bash -c 'render_one "$1"' _ {}
fi

# Manifest: every listed clip that exists now.
failed=0
while IFS=$'\t' read -r lang name voice text <&3 && read -r hash <&4; do
  if [[ -f "$out/$lang/$name.wav" ]]; then
    printf '%s/%s\t%s\n' "$lang" "$name" "$hash" >>"$tmp/manifest"
  else
    failed=$((failed + 1))
  fi
done 3<"$list" 4<"$tmp/hashes"
mv "$tmp/manifest" "$out/manifest.tsv"

# Clips no longer in the list.
removed=0
for f in "$out"/en/*.wav "$out"/zh/*.wav; do
  [[ -e "$f" ]] || continue
  rel="${f#"$out"/}"
  if [[ -z "${wanted[$rel]:-}" ]]; then
    rm -f "$f"
    removed=$((removed + 1))
  fi
done

secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "voice-clips: $total clips in $out: $jobs rendered, $((total - jobs)) unchanged," \
  "$removed removed (${secs} s)"
if ((failed > 0)); then
  echo "voice-clips: $failed clips failed to render" >&2
  exit 1
fi
