"""tools/plot_losses.py: it writes valid PNGs, and what it draws is the package's own losses
and autograd gradients (checked against values derived by hand)."""
import importlib.util
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mmdet_losses

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tools' / 'plot_losses.py'
POINTS = 21  # enough for the curves' shapes, few enough to keep the test fast

_spec = importlib.util.spec_from_file_location('plot_losses', SCRIPT)
plot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot)

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_size(path: Path):
    """(width, height) from the IHDR chunk, which must come first."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f'{path.name} is not a PNG'
    length, chunk = struct.unpack('>I4s', head[8:16])
    assert (length, chunk) == (13, b'IHDR')
    return struct.unpack('>II', head[16:24])


def assert_sensible_png(path: Path):
    width, height = png_size(path)
    assert 600 <= width <= 2000 and 300 <= height <= 1500, (width, height)
    size = path.stat().st_size
    assert 5_000 <= size <= 300_000, size


@pytest.mark.parametrize('name', list(plot.FIGURES))
def test_each_figure_is_written_as_a_png(name, tmp_path, capsys):
    spec = plot.FIGURES[name]
    assert plot.missing_losses(spec) == [], f'{name} needs losses the package lacks'
    assert plot.main(['--out', str(tmp_path), '--only', name, '--points', str(POINTS)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.filename]
    assert_sensible_png(tmp_path / spec.filename)
    assert f'wrote {tmp_path / spec.filename}' in capsys.readouterr().out


def test_command_line_headless(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'MPLBACKEND')}
    result = subprocess.run([sys.executable, str(SCRIPT), '--families', 'regression',
                             '--points', '11', '--out', str(tmp_path / 'figs')],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_sensible_png(tmp_path / 'figs' / 'regression.png')


def test_missing_loss_skips_the_figure_and_fails(tmp_path, monkeypatch, capsys):
    fake = plot.FigureSpec('fake.png', 'regression', plot.draw_regression,
                           [plot.Curve('x', 'NoSuchLoss')])
    monkeypatch.setitem(plot.FIGURES, 'fake', fake)
    assert plot.main(['--out', str(tmp_path), '--only', 'fake', '--points', '5']) == 1
    assert 'skipped fake.png: not in mmdet_losses yet: NoSuchLoss' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_figure_is_an_error():
    with pytest.raises(SystemExit, match='unknown figure or family: nosuch'):
        plot.main(['--only', 'nosuch', '--list'])


# ---- what the figures show --------------------------------------------------------------

def at(series, x):
    i = int(np.argmin(np.abs(series.x - x)))
    assert abs(series.x[i] - x) < 1e-9, f'{x} is not a sample point'
    return series.loss[i], (None if series.grad is None else series.grad[i])


def test_regression_curves_are_the_package_functions():
    data = plot.regression_data(61)  # residuals -3, -2.9, ..., 3
    residual = torch.tensor(data['L1'].x)
    expected = mmdet_losses.functional.smooth_l1_loss(residual, torch.zeros_like(residual),
                                                      reduction='none', beta=2.0)
    np.testing.assert_allclose(data['Smooth L1, β=2'].loss, expected.numpy())
    # by hand: smooth L1 (beta=1) at d=0.5 is 0.5*0.25 = 0.125, slope d/beta = 0.5
    assert at(data['Smooth L1, β=1'], 0.5) == pytest.approx((0.125, 0.5))
    assert at(data['Smooth L1, β=1'], -2.0) == pytest.approx((1.5, -1.0))
    assert at(data['L2 (MSE)'], 1.5) == pytest.approx((2.25, 3.0))
    assert at(data['L1'], -1.5) == pytest.approx((1.5, -1.0))
    # Balanced L1: gradient gamma=1.5 for outliers, alpha*log(b+1)=gamma at the joint
    assert at(data['Balanced L1 (α=0.5, γ=1.5, β=1)'], 2.0)[1] == pytest.approx(1.5)
    b = math.exp(3.0) - 1
    assert at(data['Balanced L1 (α=0.5, γ=1.5, β=1)'], 0.5)[1] == pytest.approx(
        0.5 * math.log(b * 0.5 + 1))
    # RMSE of one element is |d|, and its gradient at d=0 is 0, not NaN
    np.testing.assert_allclose(data['RMSE (one element)'].loss, np.abs(data['L1'].x))
    assert at(data['RMSE (one element)'], 0.0) == (0.0, 0.0)


def test_focal_curves_match_the_paper():
    data = plot.focal_data(1001)  # p_t = 0.001, ..., 0.999 in steps of 0.000998
    for gamma in plot.FOCAL_GAMMAS:
        label = 'CE (γ=0)' if gamma == 0 else f'FL γ={gamma:g}'
        p_t = data[label].x
        np.testing.assert_allclose(data[label].loss, -(1 - p_t) ** gamma * np.log(p_t),
                                   rtol=1e-6)
        # gradient w.r.t. the logit: d/dz of -(1-p)^g log p with dp/dz = p(1-p)
        grad = (gamma * (1 - p_t) ** gamma * p_t * np.log(p_t) - (1 - p_t) ** (gamma + 1))
        np.testing.assert_allclose(data[label].grad, grad, rtol=1e-6, atol=1e-12)


def test_margin_curves():
    data = plot.margin_data(46)  # margins -2, -1.9, ..., 2.5
    assert at(data['hinge'], 0.5) == pytest.approx((0.5, -1.0))
    assert at(data['hinge'], 1.5) == pytest.approx((0.0, 0.0))
    assert at(data['squared hinge'], -1.0) == pytest.approx((4.0, -4.0))
    assert at(data['logistic'], 0.0) == pytest.approx((math.log(2), -0.5))
    assert at(data['exponential'], 1.0) == pytest.approx((math.exp(-1), -math.exp(-1)))
    zero_one = data['0-1']
    assert zero_one.grad is None or not np.any(zero_one.grad)
    np.testing.assert_array_equal(zero_one.loss[zero_one.x < -1e-9], 1.0)
    np.testing.assert_array_equal(zero_one.loss[zero_one.x > 1e-9], 0.0)


def test_iou_shift_shows_where_iou_loss_has_no_gradient():
    data = plot.iou_shift_data(plot.IOU_CORE, 81)  # shifts -4, -3.9, ..., 4
    shift = data['IoU (1 - IoU)'].x
    apart = np.abs(shift) > 2.0 + 1e-9  # the 2-wide boxes no longer overlap
    # 1 - IoU with IoU clamped at eps=1e-6 (as mmdet's IoULoss does)
    np.testing.assert_allclose(data['IoU (1 - IoU)'].loss[apart], 1.0, atol=2e-6)
    np.testing.assert_array_equal(data['IoU (1 - IoU)'].grad[apart], 0.0)
    for label in ('GIoU', 'DIoU', 'CIoU (iou_gate=0.5)', 'CIoU (iou_gate=None)'):
        grad = data[label].grad
        # moving away from the target always costs more, overlapping or not
        assert np.all(grad[apart & (shift > 0)] > 0) and np.all(grad[apart & (shift < 0)] < 0)
        assert np.all(data[label].loss[apart] > 1.0)
    # by hand at shift 1: intersection 1*1.5, union 4+3-1.5; hull 3x2
    iou = 1.5 / 5.5
    # (the losses add eps=1e-6 to their denominators)
    assert at(data['IoU (1 - IoU)'], 1.0)[0] == pytest.approx(1 - iou, abs=1e-5)
    assert at(data['GIoU'], 1.0)[0] == pytest.approx(1 - iou + (6 - 5.5) / 6, abs=1e-5)
    assert at(data['DIoU'], 1.0)[0] == pytest.approx(1 - iou + 1 / (9 + 4), abs=1e-5)


def test_iou_aspect_sweep_same_centre():
    data = plot.iou_aspect_data(plot.IOU_CORE, 61)  # log2(w/h) = -3, -2.9, ..., 3
    # same centre: DIoU's distance term is 0, so DIoU equals IoU loss
    # (up to the eps=1e-6 the losses add to their denominators)
    np.testing.assert_allclose(data['DIoU'].loss, data['IoU (1 - IoU)'].loss, atol=1e-5)
    assert at(data['IoU (1 - IoU)'], 0.0)[0] == pytest.approx(0.0, abs=1e-5)
    # w/h = 4 with area 4: a 4x1 box in a 2x2 target, IoU = 2 / 6
    assert at(data['IoU (1 - IoU)'], 2.0)[0] == pytest.approx(1 - 2 / 6, abs=1e-5)
    # CIoU adds the aspect term where it is not gated off
    assert at(data['CIoU (iou_gate=None)'], 2.0)[0] > at(data['DIoU'], 2.0)[0]


def test_iou_variants_without_overlap():
    """What docs/figures.md says of the variants: which keep a gradient without overlap."""
    data = plot.iou_shift_data(plot.IOU_VARIANTS, 41)  # shifts -4, -3.8, ..., 4
    apart = np.abs(data['EIoU'].x) > 2.0 + 1e-9
    flat = {'IoU (1 - IoU)', 'Alpha-IoU (α=3, iou)', 'Inner-IoU', 'Focaler-IoU'}
    for label, series in data.items():
        if label in flat:
            np.testing.assert_array_equal(series.grad[apart], 0.0, err_msg=label)
        else:
            assert np.all(np.abs(series.grad[apart]) > 1e-3), label


def test_metric_curves():
    contrastive, triplet = plot.metric_data(25)
    d = contrastive['similar pair (y=1)'].x
    np.testing.assert_allclose(contrastive['similar pair (y=1)'].loss, 0.5 * d ** 2, rtol=1e-6)
    np.testing.assert_allclose(contrastive['similar pair (y=1)'].grad, d, rtol=1e-6)
    dissimilar = contrastive['dissimilar pair (y=0), margin 1']
    np.testing.assert_allclose(dissimilar.loss, 0.5 * np.maximum(1 - d, 0) ** 2, atol=1e-9)
    np.testing.assert_allclose(dissimilar.grad, -np.maximum(1 - d, 0), atol=1e-9)
    gap = triplet['margin 0.3 (default)'].x
    assert gap.max() < 1.0  # the negative never sits on the anchor
    for label, margin in (('margin 0.3 (default)', 0.3), ('margin 1', 1.0)):
        np.testing.assert_allclose(triplet[label].loss, np.maximum(gap + margin, 0), atol=1e-9)
        off_kink = np.abs(gap + margin) > 1e-6  # the subgradient at the kink is either
        np.testing.assert_allclose(triplet[label].grad[off_kink],
                                   (gap + margin > 0)[off_kink].astype(float))
    soft = triplet['soft margin, log(1 + exp(gap + 0.3))']
    np.testing.assert_allclose(soft.loss, np.log1p(np.exp(gap + 0.3)), rtol=1e-6)
    np.testing.assert_allclose(soft.grad, 1 / (1 + np.exp(-(gap + 0.3))), rtol=1e-6)
