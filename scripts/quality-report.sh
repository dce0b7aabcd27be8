#!/usr/bin/env bash
# The quality figures of docs/results.md in one go, on the embedded defaults and our eval set:
#   bash scripts/quality-report.sh [OUT_DIR] [--threads N]
# Writes OUT_DIR/spectral.txt + spectral.json (tuss-codec eval: SI-SDRi and mel gain per task and prompt) and
# OUT_DIR/codec.txt + codec.json (tuss-codec eval-codec: embedded codec next to Opus at 2, 4, 6 kbps), and, when a
# default masker is shipped (Models/codec-masker), OUT_DIR/both.txt (spectral and codec path side by side).
# Needs a release build (swift build -c release) and the eval set (Training/eval/set, committed).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-quality-report}"
shift || true
tool=.build/release/tuss-codec
[ -x "$tool" ] || { echo "build first: swift build -c release" >&2; exit 1; }
manifest=Training/eval/set/manifest.json
[ -f "$manifest" ] || { echo "eval set not found: $manifest" >&2; exit 1; }
mkdir -p "$out"
start=$(date +%s)
"$tool" eval --manifest "$manifest" --json "$out/spectral.json" --quiet "$@" | tee "$out/spectral.txt"
"$tool" eval-codec --manifest "$manifest" --bitrates 2,4,6 --json "$out/codec.json" "$@" | tee "$out/codec.txt"
if [ -f Models/codec-masker/model.safetensors ]; then
  "$tool" eval --manifest "$manifest" --path both --quiet "$@" | tee "$out/both.txt"
fi
echo "quality report in $out/ ($(( $(date +%s) - start )) s on $(nproc) cores, $(date -u +%FT%TZ))"
