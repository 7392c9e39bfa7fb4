#!/usr/bin/env bash
# THE MAIN JOB: set up, generate the bundled shapes dataset if missing, train the default
# detector (RetinaNet-R18 with mmdet_losses.FocalLoss + mmdet_losses.CIoULoss) end to end,
# evaluate it and print its bbox mAP. About 5 minutes on a 2-core CPU (bbox mAP 0.595 to 0.597).
#
#   bash tools/main.sh                         # the default run
#   bash tools/main.sh --cfg-options train_cfg.max_epochs=2     # extra tools/train.py options
#
# Environment: CONFIG (default configs/retinanet/retinanet_r18_fpn_focal-ciou_shapes.py),
# WORK_DIR (default work_dirs/main).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG=${CONFIG:-configs/retinanet/retinanet_r18_fpn_focal-ciou_shapes.py}
WORK_DIR=${WORK_DIR:-work_dirs/main}
PY="$ROOT/.venv/bin/python"
start=$(date +%s)
say() { printf '\033[1m[main %4ss]\033[0m %s\n' "$(( $(date +%s) - start ))" "$*"; }

# Threads for the training process: the cores that are idle now (all of them on a quiet
# machine, at least 1). On a busy machine, more threads than idle cores make every step wait.
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
    idle=$(awk -v cores="$(nproc)" \
        '{ n = int(cores - $1 + 0.5); if (n < 1) n = 1; if (n > cores) n = cores; print n }' \
        /proc/loadavg)
    export OMP_NUM_THREADS=$idle
fi

say "1/4 set-up (tools/setup.sh)"
bash tools/setup.sh

say "2/4 data: the bundled shapes dataset, generated if missing"
"$PY" tools/make_shapes.py --config "$CONFIG" --if-missing

say "3/4 training $CONFIG -> $WORK_DIR ($OMP_NUM_THREADS threads)"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
checkpoint="$(cat "$WORK_DIR/last_checkpoint")"

say "4/4 evaluating $checkpoint on the validation split"
"$PY" tools/test.py "$CONFIG" "$checkpoint" --work-dir "$WORK_DIR/test"

"$PY" - "$WORK_DIR/test/metrics.json" "$(( $(date +%s) - start ))" <<'PYEOF'
import json, sys
metrics = json.load(open(sys.argv[1]))
get = lambda key: metrics.get(f'coco/bbox_{key}', float('nan'))
print(f'\n[main] bbox mAP {get("mAP"):.3f} | AP50 {get("mAP_50"):.3f} | AP75 {get("mAP_75"):.3f}'
      f' | APs {get("mAP_s"):.3f} APm {get("mAP_m"):.3f} APl {get("mAP_l"):.3f}'
      f' | wall time {int(sys.argv[2])} s')
PYEOF
