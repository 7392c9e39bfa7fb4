"""tools/bench_gpu.sh and tools/bench_gpu.py (the GPU check and benchmark of issue #15) kept
working without a GPU: the whole script in its CPU dry run, its reference formulas against
mmdet's own implementations (installed here, not on the GPU machine), and the mmcv build's
refusal without CUDA."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'tools', 'bench_gpu.sh')


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        'bench_gpu', os.path.join(ROOT, 'tools', 'bench_gpu.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench_module()


def test_dry_run_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, BENCH_GPU_BUILD_EXT='0')  # never a build
    env.pop('MMDET_LOSSES_TRITON_CPU', None)  # the CPU kernels: quick
    result = subprocess.run(['bash', SCRIPT, '--device', 'cpu', '--dry-run', '--out',
                             str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / 'bench_gpu.txt').read_text()
    data = json.loads((tmp_path / 'bench_gpu.json').read_text())
    assert report.splitlines()[0].startswith('# bench_gpu: cpu')
    checks = {row[0]: row for row in data['checks']}
    assert len(checks) == 21 and all(row[1] == 'PASS' for row in checks.values()), checks
    from mmdet_losses.ops import focal_kernel, iou_kernels, regression_kernel
    if regression_kernel.kernels_available():  # the fused operator really ran
        assert 'regression_loss' in checks['SmoothL1Loss'][2]
    if focal_kernel.available():
        assert checks['FocalLoss(index)'][2] == 'sigmoid_focal_loss_index'
    if iou_kernels.kernels_available():
        assert 'iou_loss' in checks['CIoULoss'][2]
    groups = {}
    for group, impl, ms, *_ in data['timings']:
        groups.setdefault(group.split()[0], []).append(impl)
        assert ms == ms and float(ms) > 0, (group, impl)  # measured, not NaN
    assert set(groups) == {'FocalLoss', 'IoULoss(log)', 'GIoULoss', 'DIoULoss', 'CIoULoss',
                           'L1Loss', 'MSELoss', 'SmoothL1Loss', 'BalancedL1Loss'}
    assert groups['FocalLoss'] == ['mmdet_losses (fused)', 'mmdet py_sigmoid_focal_loss',
                                   'torch.compile(our plain)']
    assert groups['CIoULoss'] == ['mmdet_losses (fused)', 'mmdet formula',
                                  'torch.compile(our plain)']
    assert 'mmcv reference: not built: dry run' in report


def test_shell_script_parses():
    subprocess.run(['bash', '-n', SCRIPT], check=True)


def _boxes(n=300):
    return bench.make_boxes(n, 'cpu', torch.float64, seed=1)


def test_iou_formulas_are_mmdets():
    import importlib
    mmdet_iou = importlib.import_module('mmdet.models.losses.iou_loss')
    pred, target = _boxes()
    pred[:20] = target[:20]  # exact matches: IoU 1
    pred[20:30] += 500.0  # disjoint boxes: IoU 0
    torch.testing.assert_close(bench.mmdet_iou(pred, target),
                               mmdet_iou.iou_loss(pred, target, mode='log', eps=1e-6))
    for ours, theirs in ((bench.mmdet_giou, mmdet_iou.giou_loss),
                         (bench.mmdet_diou, mmdet_iou.diou_loss),
                         (bench.mmdet_ciou, mmdet_iou.ciou_loss)):
        a = pred.clone().requires_grad_(True)
        b = pred.clone().requires_grad_(True)
        ours(a, target).backward()
        theirs(b, target, eps=1e-7).backward()
        torch.testing.assert_close(a.grad, b.grad)


def test_focal_and_regression_formulas_are_mmdets():
    from mmdet.models.losses import balanced_l1_loss, focal_loss, l1_loss, mse_loss
    from mmdet.models.losses import smooth_l1_loss
    pred, labels, _ = bench.make_logits(40, 6, 'cpu')
    one_hot = torch.nn.functional.one_hot(labels, 7)[:, :6].float()
    torch.testing.assert_close(bench.mmdet_py_sigmoid_focal(pred, labels),
                               focal_loss.py_sigmoid_focal_loss(pred, one_hot))
    p, t = bench.make_residuals(50, 'cpu')
    torch.testing.assert_close(bench.plain_l1(p, t), l1_loss(p, t))
    torch.testing.assert_close(bench.plain_mse(p, t), mse_loss(p, t))
    torch.testing.assert_close(bench.plain_smooth_l1(p, t), smooth_l1_loss(p, t, beta=1.0))
    torch.testing.assert_close(bench.plain_balanced_l1(p, t), balanced_l1_loss(p, t))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal without CUDA')
def test_mmcv_reference_is_skipped_with_a_reason(tmp_path):
    module, why = bench.build_mmcv_focal(bench.DEFAULT_SDIST, str(tmp_path))
    assert module is None and why == 'no CUDA device'
