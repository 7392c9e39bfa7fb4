#!/usr/bin/env bash
# The GPU check and benchmark of issue #15 in one command, from the repository root or anywhere:
#
#   bash tools/bench_gpu.sh [tools/bench_gpu.py options]     (e.g. --skip-checks, --repeats 10)
#
# Made for a bare GPU machine without network (Python 3.12, a CUDA build of torch with Triton,
# nvcc; no mmcv, no mmdet, no mmengine), within 8 minutes on one H100/H200:
#   1. mmengine (the package's registry needs it) from the wheels carried in
#      tools/bench_cases/wheels ($MMDET_LOSSES_WHEELS), when it is not installed;
#   2. the C++ extensions built in place when they are missing (the GPU kernels run without
#      them, but the kind ids of the regression and IoU kernels are read from them: without
#      the build only the focal loss would run fused on the GPU), in parallel with
#   3. mmcv 2.1.0's CUDA sigmoid focal loss compiled alone from its source distribution
#      (tools/bench_cases/mmcv-2.1.0.tar.gz, $MMCV_SDIST; skipped with a message without it);
#   4. tools/bench_gpu.py: checks against the plain path, then the timings; the table goes to
#      stdout and, with $OUT set, to $OUT/bench_gpu.txt and .json.
# PYTHON picks the interpreter (default python3). The exit status is bench_gpu.py's (1: a check
# failed), or that of the step that failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
started=$(date +%s)
export BENCH_GPU_STARTED=$started  # bench_gpu.py's time budget counts from here
say() { echo "bench_gpu.sh [$(( $(date +%s) - started )) s]: $*"; }

if ! "$PY" -c 'import mmengine' 2>/dev/null; then
  wheels=${MMDET_LOSSES_WHEELS:-tools/bench_cases/wheels}
  site=${TMPDIR:-/tmp}/mmdet_losses_bench_site
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    say "mmengine is not installed and there are no wheels in $wheels"; exit 1
  fi
  say "installing $(ls "$wheels" | tr '\n' ' ')into $site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$wheels"/*.whl || exit 1
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi

build_pid=
build_log=${TMPDIR:-/tmp}/mmdet_losses_build_ext.log
# BENCH_GPU_BUILD_EXT=0 (the CPU dry run of the tests) or MMDET_LOSSES_NO_EXT=1: no build
if [ "${BENCH_GPU_BUILD_EXT:-1}" != 0 ] && [ "${MMDET_LOSSES_NO_EXT:-0}" != 1 ] && ! "$PY" -c \
    'import mmdet_losses.ops._regression, mmdet_losses.ops._iou, mmdet_losses.ops._focal' \
    2>/dev/null; then
  say "building the C++ extensions (log: $build_log)"
  MAX_JOBS=${MAX_JOBS:-8} "$PY" setup.py -q build_ext --inplace -j 3 >"$build_log" 2>&1 &
  build_pid=$!
fi
"$PY" tools/bench_gpu.py --build-mmcv-only "$@"
if [ -n "$build_pid" ]; then
  if ! wait "$build_pid"; then
    tail -n 30 "$build_log"
    say "the C++ extensions did not build: the regression and IoU losses run unfused"
  else
    say "C++ extensions built"
  fi
fi
"$PY" tools/bench_gpu.py "$@"
status=$?
say "done, status $status"
exit $status
