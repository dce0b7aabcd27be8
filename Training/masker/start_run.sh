#!/usr/bin/env bash
# Start (or resume) the codec-masker training run in the background: 1 thread, nice 5, detached from the shell.
#   bash Training/masker/start_run.sh            # new run "codec-masker" on Codecs/dac-small-16k/codec.safetensors
#   bash Training/masker/start_run.sh --resume   # continue runs/codec-masker from latest.pt
#   CODEC=path/to/codec.safetensors bash Training/masker/start_run.sh   # another codec
# Extra arguments are passed to train_masker.py. Prints the PID; the log is Training/masker/runs/<run>/stdout.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN="${RUN:-codec-masker}"
CODEC="${CODEC:-Codecs/dac-small-16k/codec.safetensors}"
[ -f "$CODEC" ] || { echo "codec not found: $CODEC (train it first, or set CODEC=path)" >&2; exit 1; }
mkdir -p "Training/masker/runs/$RUN"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 setsid nohup nice -n 5 python3 Training/masker/train_masker.py --run "$RUN" \
    --codec "$CODEC" "$@" >> "Training/masker/runs/$RUN/stdout.log" 2>&1 < /dev/null &
echo "$!" > "Training/masker/runs/$RUN/pid"
echo "started train_masker.py (run $RUN, codec $CODEC) as PID $!; log Training/masker/runs/$RUN/stdout.log"
