#!/usr/bin/env bash
# Run the test suite, setting up first if needed (tools/setup.sh is idempotent: seconds when done).
# Extra arguments go to pytest, e.g.  bash tools/test.sh tests/test_regression.py -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
# The GPU kernels' tests run through Triton's interpreter on the CPU: a test-only extra
# (about 600 MB), so it is installed here and not by the main job's set-up.
if ! .venv/bin/python -c "import triton" >/dev/null 2>&1; then
    echo "[test] installing the test extra (requirements-gpu-test.txt: Triton's interpreter)"
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -q \
        -r requirements-gpu-test.txt
fi
exec .venv/bin/python -m pytest "$@"
