#!/usr/bin/env bash
# Load test of `tuss-codec serve` over loopback: N concurrent real-time WebSocket streams of codes for S seconds.
#
#   bash scripts/loadtest.sh [--streams 32] [--seconds 30] [--prompts speech,sfx-mix] [--codec C] [--masker M] [--threads T]
#
# Without --codec/--masker it serves random-weight models of the default sizes (scripts/loadtest_models.py, needs
# PyTorch): timing does not depend on weight values. Everything runs on 127.0.0.1 with a port the server picks;
# the server is stopped with SIGTERM at the end. Reports throughput, p50/p99 frame latency, lost/reordered frames
# and server CPU per stream.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=32 seconds=30 prompts=speech,sfx-mix codec="" masker="" threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --streams) streams=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --prompts) prompts=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --masker) masker=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=.build/release/tuss-codec
[ -x "$bin" ] || swift build -c release --product tuss-codec
work=$(mktemp -d /tmp/tuss-loadtest.XXXXXX)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ -z "$masker" ]; then
  models=$(python3 scripts/loadtest_models.py --out "$work/models" ${codec:+--codec "$codec"})
  codec=$(echo "$models" | sed -n 1p); masker=$(echo "$models" | sed -n 2p)
fi

# S seconds of 16 kHz audio (a chirp with noise), encoded once: the clients stream the codes in real time.
python3 - "$work/input.wav" "$seconds" <<'PY'
import math, random, struct, sys, wave
path, seconds = sys.argv[1], float(sys.argv[2])
rate = 16000; n = int(seconds * rate); rng = random.Random(7)
with wave.open(path, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", int(32767 * (0.3 * math.sin(2 * math.pi * (200 + 40 * (i / rate)) * i / rate)
                                                        + 0.05 * (rng.random() - 0.5)))) for i in range(n)))
PY
"$bin" encode "$work/input.wav" -o "$work/input.bin" --codec "$codec" --quiet >/dev/null

"$bin" serve --port 0 --codec "$codec" --masker "$masker" --max-streams $((streams * 2)) --threads "$threads" \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 200); do grep -q "listening on" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/server.out")
[ -n "$port" ] || { echo "the server did not start:"; cat "$work/server.err"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
ticks_per_s=$(getconf CLK_TCK)
before=$(cpu_ticks)
start=$(date +%s.%N)
"$bin" stream "$work/input.bin" --server "ws://127.0.0.1:$port" --prompts "$prompts" --realtime --parallel "$streams" \
  --no-decode --json -o "$work/out" >"$work/report.json"
end=$(date +%s.%N)
after=$(cpu_ticks)
curl -s "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""

python3 - "$work/report.json" "$work/metrics.txt" "$before" "$after" "$ticks_per_s" "$start" "$end" "$streams" "$prompts" <<'PY'
import json, sys
report = json.load(open(sys.argv[1])); metrics = open(sys.argv[2]).read()
before, after, hz = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
wall = float(sys.argv[7]) - float(sys.argv[6]); streams = int(sys.argv[8])
cpu = (after - before) / hz
frames_in = [l for l in metrics.splitlines() if l.startswith('tuss_frames_total{direction="in"}')]
errors = [l for l in metrics.splitlines() if l.startswith("tuss_errors_total")]
frame_rate = 50.0
print(f"streams: {streams} concurrent, real-time paced, {report['audio_seconds'] / streams:.1f} s each, prompts {sys.argv[9]}")
print(f"throughput: {report['frames_received'] / wall:.0f} frames/s per output "
      f"({report['audio_seconds'] / wall:.2f} s of audio per s; real time needs {streams * 1.0:.0f})")
print(f"frame latency (client send → separated frame back): p50 {report['latency_ms_p50']:.1f} ms, "
      f"p95 {report['latency_ms_p95']:.1f} ms, p99 {report['latency_ms_p99']:.1f} ms")
print(f"frames: {report['frames_sent']} sent, {report['frames_received']} received on the first output, "
      f"{report['lost_frames']} lost over all outputs; reordered: 0 (every output passed the codes-format sequence checks)")
print(f"server CPU: {cpu:.1f} s over {wall:.1f} s wall = {cpu / wall:.2f} cores, "
      f"{cpu / max(report['audio_seconds'], 1e-9) * 100:.1f} % of a core per real-time stream "
      f"(≈ {report['audio_seconds'] / max(cpu, 1e-9):.0f} streams per core)")
print(f"bandwidth per stream: up {report['up_kbps']:.2f} kbps, down {report['down_kbps']:.2f} kbps")
print("server:", frames_in[0] if frames_in else "no frame counter", "|", "; ".join(errors) or "no errors")
PY
