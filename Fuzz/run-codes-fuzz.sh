#!/usr/bin/env bash
# Builds the libFuzzer + AddressSanitizer harness for the codes format and fuzzes it.
#   Fuzz/run-codes-fuzz.sh [seconds]      (default 180)
# Work files (binary, corpus, crash artifacts) go to .build/codes-fuzz unless CODES_FUZZ_DIR is set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-180}
out=${CODES_FUZZ_DIR:-$root/.build/codes-fuzz}
mkdir -p "$out/corpus"

swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
    "$root"/Fuzz/CodesFuzz/CodesFuzz.swift "$root"/Sources/TussPipeline/Codes/*.swift \
    -o "$out/codes-fuzz"

if [ -z "$(ls -A "$out/corpus")" ]; then
    CODES_FUZZ_WRITE_SEEDS="$out/corpus" "$out/codes-fuzz"
fi

"$out/codes-fuzz" "$out/corpus" \
    -dict="$root/Fuzz/CodesFuzz/codes.dict" \
    -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix="$out/" -print_final_stats=1
