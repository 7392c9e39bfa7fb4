"""DIoU-NMS against a plain greedy Python-loop reference written from the paper's rule, the
compiled and the pure-PyTorch paths against each other, the effect of beta, empty input and
ties, the batched form, and selection from mmcv's batched_nms / mmdet's multiclass_nms."""
import subprocess
import sys

import pytest
import torch

import mmdet_losses
from mmdet_losses.ops import nms as nms_module
from mmdet_losses.ops.iou_kernels import kernels_available


# ----------------------------------------------------------------- the reference, plainly
def _diou_score(a, b, beta):
    """IoU - (rho^2 / c^2)^beta of two xyxy boxes given as Python lists (Zheng et al.)."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / union
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    rho2 = dx ** 2 + dy ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    return iou - (rho2 / c2) ** beta


def greedy_reference(boxes, scores, threshold, beta=1.0):
    boxes, scores = boxes.tolist(), scores.tolist()
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(_diou_score(boxes[k], boxes[i], beta) <= threshold for k in keep):
            keep.append(i)
    return keep


def clustered_boxes(n, seed, dtype=torch.float32):
    """Boxes in a few clusters, so that many overlap; distinct random scores."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(5, 2, generator=gen) * 100
    c = centres[torch.randint(0, 5, (n,), generator=gen)] + torch.randn(n, 2, generator=gen) * 3
    wh = 8 + torch.rand(n, 2, generator=gen) * 20
    boxes = torch.cat((c - wh / 2, c + wh / 2), 1).to(dtype)
    return boxes, torch.rand(n, generator=gen).to(dtype)


@pytest.fixture(params=['kernel', 'plain'])
def path(request, monkeypatch):
    """Run each test through the compiled kernel and through the pure-PyTorch path."""
    if request.param == 'kernel' and not kernels_available():
        pytest.skip('mmdet_losses.ops._iou is not built')
    if request.param == 'plain':
        monkeypatch.setattr(nms_module, '_EXT', None)
    return request.param


# --------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('beta', [0.6, 1.0, 2.0])
@pytest.mark.parametrize('threshold', [0.3, 0.5, 0.7])
def test_matches_greedy_reference(path, threshold, beta):
    boxes, scores = clustered_boxes(120, seed=int(threshold * 10 + beta * 100))
    keep = mmdet_losses.diou_nms(boxes, scores, threshold, beta)
    expected = greedy_reference(boxes.double(), scores, threshold, beta)
    assert keep.dtype == torch.long
    assert keep.tolist() == expected
    assert 10 < len(expected) < 110  # at least ten suppressed, ten kept


def test_float64_and_half_boxes(path):
    boxes, scores = clustered_boxes(60, seed=11, dtype=torch.float64)
    expected = greedy_reference(boxes, scores, 0.5)
    assert mmdet_losses.diou_nms(boxes, scores, 0.5).tolist() == expected
    half = boxes.round().half()  # exactly representable: same decisions in float32
    assert mmdet_losses.diou_nms(half, scores.half(), 0.5).tolist() == \
        greedy_reference(half.double(), scores.half(), 0.5)


def test_centre_distance_keeps_what_iou_nms_drops(path):
    """IoU 0.6 and rho^2 / c^2 = 4 / 200: plain NMS at 0.59 would suppress; DIoU-NMS keeps
    with beta = 1 (0.6 - 0.02 < 0.59) and suppresses with beta = 2 (0.6 - 0.0004 > 0.59): a
    larger beta moves towards plain NMS, a smaller one away from it."""
    boxes = torch.tensor([[0.0, 0.0, 8.0, 10.0], [2.0, 0.0, 10.0, 10.0]])
    # inter 6x10 = 60, union 100: IoU 0.6; centres 2 apart, enclosing 10x10: c^2 = 200
    assert _diou_score(boxes[0].tolist(), boxes[1].tolist(), 1.0) == pytest.approx(0.6 - 4 / 200)
    scores = torch.tensor([0.9, 0.8])
    assert mmdet_losses.diou_nms(boxes, scores, 0.59).tolist() == [0, 1]
    assert mmdet_losses.diou_nms(boxes, scores, 0.5).tolist() == [0]
    assert mmdet_losses.diou_nms(boxes, scores, 0.59, beta=2.0).tolist() == [0]
    assert mmdet_losses.diou_nms(boxes, scores, 0.5999, beta=0.5).tolist() == [0, 1]


def test_empty_input(path):
    keep = mmdet_losses.diou_nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.dtype == torch.long and keep.shape == (0,)
    keep = mmdet_losses.batched_diou_nms(torch.zeros(0, 4), torch.zeros(0),
                                         torch.zeros(0, dtype=torch.long), 0.5)
    assert keep.dtype == torch.long and keep.shape == (0,)


def test_ties_keep_the_lower_index_first(path):
    box = [0.0, 0.0, 10.0, 10.0]
    boxes = torch.tensor([box, [50.0, 50.0, 60.0, 60.0], box, box])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5])
    # box 2 scores best and suppresses its copies 0 and 3; 1 ties with them, kept
    assert mmdet_losses.diou_nms(boxes, scores, 0.5).tolist() == [2, 1]
    scores = torch.full((4,), 0.7)
    assert mmdet_losses.diou_nms(boxes, scores, 0.5).tolist() == [0, 1]


def test_degenerate_boxes_stay_finite(path):
    """Zero-area and inverted boxes neither crash nor suppress everything."""
    boxes = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0],
                          [10.0, 10.0, 0.0, 0.0]])
    keep = mmdet_losses.diou_nms(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), 0.5)
    assert keep.tolist() == [0, 1, 2, 3]  # zero areas: IoU 0, nothing above 0.5


# ------------------------------------------------------- non-finite boxes and scores
def _without(boxes, scores, drop, threshold, beta=1.0):
    """The reference's kept indices with the boxes ``drop`` removed beforehand."""
    rest = [i for i in range(boxes.shape[0]) if i not in drop]
    kept = greedy_reference(boxes[rest].double(), scores[rest], threshold, beta)
    return [rest[k] for k in kept]


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('position', range(4))
def test_nonfinite_box_is_discarded(path, value, position):
    """A box with a NaN or infinite coordinate is never kept and suppresses nothing, wherever
    it ranks (before the issue, the kernel let a NaN box suppress valid ones: [0, 2] against
    the plain path's [0, 1, 2])."""
    boxes, scores = clustered_boxes(40, seed=31)
    for bad in (int(scores.argmax()), 7, int(scores.argmin())):
        hostile = boxes.clone()
        hostile[bad, position] = value
        keep = mmdet_losses.diou_nms(hostile, scores, 0.5)
        assert bad not in keep.tolist()
        assert keep.tolist() == _without(boxes, scores, {bad}, 0.5)
    # the case: three boxes, the first NaN; the other two do not overlap
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0],
                          [20.0, 20.0, 30.0, 30.0]])
    boxes[0, position] = value
    assert mmdet_losses.diou_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [1, 2]


def test_nan_score_is_discarded_and_infinite_scores_are_sort_keys(path):
    boxes, scores = clustered_boxes(40, seed=32)
    hostile = scores.clone()
    hostile[3] = float('nan')
    keep = mmdet_losses.diou_nms(boxes, hostile, 0.5)
    assert keep.tolist() == _without(boxes, scores, {3}, 0.5)
    # +inf ranks first and -inf last, as any score would there
    hostile = scores.clone()
    hostile[5], hostile[6] = float('inf'), -float('inf')
    ranked = scores.clone()
    ranked[5], ranked[6] = 2.0, -1.0
    keep = mmdet_losses.diou_nms(boxes, hostile, 0.5)
    assert keep.tolist() == greedy_reference(boxes.double(), ranked, 0.5)
    assert keep[0] == 5
    # only non-finite candidates: nothing kept
    assert mmdet_losses.diou_nms(boxes[:2] * float('nan'), scores[:2], 0.5).tolist() == []
    assert mmdet_losses.diou_nms(boxes[:2], scores[:2] * float('nan'), 0.5).tolist() == []


@pytest.mark.skipif(not kernels_available(), reason='mmdet_losses.ops._iou is not built')
def test_kernel_itself_skips_nonfinite_boxes():
    """The compiled greedy loop, called directly on sorted boxes, neither keeps a non-finite box
    nor lets it suppress (a NaN box used to act as a finite one through its min/max)."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, float('nan')], [0.0, 0.0, 10.0, 10.0],
                          [float('-inf'), 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
    kept = nms_module._EXT.diou_nms_sorted(boxes, None, 0.5, 1.0, nms_module.NMS_EPS)
    assert kept.tolist() == [1]  # box 3 overlaps box 1 (IoU 0.81): suppressed by it


def test_batched_discards_nonfinite_boxes_and_scores(path):
    boxes, scores = clustered_boxes(60, seed=33)
    idxs = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(3))
    hostile_boxes, hostile_scores = boxes.clone(), scores.clone()
    hostile_boxes[4, 1] = float('nan')
    hostile_boxes[9, 2] = float('inf')
    hostile_scores[12] = float('nan')
    keep = mmdet_losses.batched_diou_nms(hostile_boxes, hostile_scores, idxs, 0.4)
    drop = {4, 9, 12}
    expected = []
    for group in range(3):
        members = [i for i in range(60) if idxs[i] == group and i not in drop]
        kept = greedy_reference(boxes[members].double(), scores[members], 0.4)
        expected += [members[k] for k in kept]
    expected.sort(key=lambda i: (-float(scores[i]), i))
    assert keep.tolist() == expected


def test_batched_per_class(path):
    boxes, scores = clustered_boxes(150, seed=21)
    idxs = torch.randint(0, 4, (150,), generator=torch.Generator().manual_seed(2))
    keep = mmdet_losses.batched_diou_nms(boxes, scores, idxs, 0.4)
    expected = []
    for c in range(4):
        members = torch.nonzero(idxs == c).flatten()
        expected += members[greedy_reference(boxes[members].double(), scores[members],
                                             0.4)].tolist()
    expected.sort(key=lambda i: (-float(scores[i]), i))
    assert keep.tolist() == expected
    # two identical boxes of different classes are both kept
    two = torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2)
    assert mmdet_losses.batched_diou_nms(two, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]),
                                         0.5).tolist() == [0, 1]


@pytest.mark.parametrize('call,error', [
    (lambda: mmdet_losses.diou_nms([[0, 0, 1, 1]], torch.ones(1), 0.5), TypeError),
    (lambda: mmdet_losses.diou_nms(torch.zeros(3, 5), torch.ones(3), 0.5), ValueError),
    (lambda: mmdet_losses.diou_nms(torch.zeros(3, 4), torch.ones(2), 0.5), ValueError),
    (lambda: mmdet_losses.diou_nms(torch.zeros(3, 4), torch.ones(3), 0.5, beta=0.0),
     ValueError),
    (lambda: mmdet_losses.diou_nms(torch.zeros(3, 4), torch.ones(3), '0.5'), TypeError),
    (lambda: mmdet_losses.batched_diou_nms(torch.zeros(3, 4), torch.ones(3), torch.ones(3),
                                           0.5), ValueError),
])
def test_bad_input(call, error):
    with pytest.raises(error) as info:
        call()
    assert any(name in str(info.value) for name in ('boxes', 'scores', 'beta', 'idxs',
                                                     'iou_threshold'))


# ---------------------------------------------------------------- mmcv / mmdet selection
def test_mmcv_batched_nms_selects_diou_nms(path):
    ops = pytest.importorskip('mmcv.ops')
    boxes, scores = clustered_boxes(200, seed=31)
    idxs = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(4))
    expected = mmdet_losses.batched_diou_nms(boxes, scores, idxs, 0.5)
    for cfg in (dict(type='diou_nms', iou_threshold=0.5),
                dict(type='diou_nms', iou_threshold=0.5, split_thr=50)):  # per-class path
        dets, keep = ops.batched_nms(boxes, scores, idxs, cfg)
        assert keep.tolist() == expected.tolist()
        torch.testing.assert_close(dets, torch.cat((boxes[keep], scores[keep, None]), 1))
    # beta reaches the op; mmcv's own 'nms' (IoU only) keeps fewer boxes than DIoU-NMS
    _, keep_beta = ops.batched_nms(boxes, scores, idxs,
                                   dict(type='diou_nms', iou_threshold=0.5, beta=3.0))
    assert keep_beta.tolist() == mmdet_losses.batched_diou_nms(boxes, scores, idxs, 0.5,
                                                               beta=3.0).tolist()
    _, keep_iou = ops.batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    assert len(keep_iou) < len(expected)


def test_mmcv_op_options_follow_mmcv_nms():
    pytest.importorskip('mmcv.ops')
    boxes, scores = clustered_boxes(80, seed=41)
    dets, keep = nms_module.mmcv_diou_nms(boxes, scores, 0.5, score_threshold=0.3, max_num=5)
    valid = torch.nonzero(scores > 0.3).flatten()
    expected = valid[mmdet_losses.diou_nms(boxes[valid], scores[valid], 0.5)][:5]
    assert keep.tolist() == expected.tolist()
    assert dets.shape == (5, 5)
    shifted = boxes.clone()
    shifted[:, 2:] += 1
    _, keep_offset = nms_module.mmcv_diou_nms(boxes, scores, 0.5, offset=1)
    assert keep_offset.tolist() == mmdet_losses.diou_nms(shifted, scores, 0.5).tolist()
    with pytest.raises(ValueError, match='offset'):
        nms_module.mmcv_diou_nms(boxes, scores, 0.5, offset=2)


def test_mmdet_multiclass_nms_test_cfg():
    """What a Faster R-CNN bbox head (and RetinaNet, through batched_nms) runs with
    ``test_cfg.nms = dict(type='diou_nms', iou_threshold=0.5)``."""
    layers = pytest.importorskip('mmdet.models.layers')
    gen = torch.Generator().manual_seed(5)
    boxes, _ = clustered_boxes(100, seed=51)
    scores = torch.rand(100, 4, generator=gen)
    scores[:, -1] = 0  # background column
    dets, labels = layers.multiclass_nms(boxes, scores, 0.2,
                                         dict(type='diou_nms', iou_threshold=0.5), max_num=50)
    valid = scores[:, :-1] > 0.2
    box_idx, label = torch.nonzero(valid, as_tuple=True)
    flat = scores[:, :-1][valid]
    keep = mmdet_losses.batched_diou_nms(boxes[box_idx], flat, label, 0.5)[:50]
    torch.testing.assert_close(dets[:, :4], boxes[box_idx][keep])
    torch.testing.assert_close(dets[:, 4], flat[keep])
    assert labels.tolist() == label[keep].tolist()


def test_registration_when_mmcv_is_imported_after():
    """A config imports mmdet_losses (custom_imports) before mmdet imports mmcv.ops."""
    pytest.importorskip('mmcv.ops')
    code = (
        "import sys, torch, mmdet_losses\n"
        "assert 'mmcv.ops.nms' not in sys.modules\n"
        "from mmcv.ops import batched_nms\n"
        "boxes = torch.tensor([[0., 0., 10., 10.], [0., 4., 10., 14.], [1., 1., 11., 11.]])\n"
        "dets, keep = batched_nms(boxes, torch.tensor([.9, .7, .8]), torch.zeros(3),\n"
        "                         dict(type='diou_nms', iou_threshold=0.4))\n"
        "print(keep.tolist())\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, cwd=str(__import__('pathlib').Path(__file__).parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[0, 1]'
