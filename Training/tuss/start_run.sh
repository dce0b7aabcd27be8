#!/usr/bin/env bash
# Start (or resume) the tuss-small training run in the background: 1 thread, nice 5, detached from the shell.
#   bash Training/tuss/start_run.sh            # new run "small" (fails if runs/small/latest.pt exists)
#   bash Training/tuss/start_run.sh --resume   # continue runs/small from latest.pt
# Extra arguments are passed to train.py. Prints the PID; the log is Training/tuss/runs/small/stdout.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN="${RUN:-small}"
mkdir -p "Training/tuss/runs/$RUN"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 setsid nohup nice -n 15 python3 Training/tuss/train.py --run "$RUN" "$@" \
    >> "Training/tuss/runs/$RUN/stdout.log" 2>&1 < /dev/null &
echo "$!" > "Training/tuss/runs/$RUN/pid"
echo "started train.py (run $RUN) as PID $!; log Training/tuss/runs/$RUN/stdout.log"
