#!/usr/bin/env bash
# The whole test suite: Swift tests (release build: the reference-model tests are numeric and slow in debug),
# then the Python recipe tests when PyTorch is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build 2>&1 | tee .build/swift-test.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
if python3 -c "import torch, pytest" 2>/dev/null && [ -d Training/tests ]; then
  set +e
  python3 -m pytest -q Training/tests
  py=$?
  set -e
  # Exit 5 means no tests were collected: not a failure of the suite.
  if [ "$py" -ne 0 ] && [ "$py" -ne 5 ]; then exit "$py"; fi
else
  echo "python recipe tests skipped: torch or pytest not installed (pip install -r Training/requirements.txt)"
fi
