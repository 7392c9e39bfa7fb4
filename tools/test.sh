#!/usr/bin/env bash
# Run the test suite, setting up first if needed (tools/setup.sh is idempotent: seconds when done).
# Extra arguments go to pytest, e.g.  bash tools/test.sh tests/test_regression.py -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest "$@"
