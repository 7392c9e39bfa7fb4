"""Box formats and the pairwise / aligned box_iou, against torchvision's formulas written out
plainly, mmdet's bbox_overlaps (when mmcv is installed) and hand-derived geometry."""
import math

import pytest
import torch

from mmdet_losses import box_area, box_convert, box_iou
from mmdet_losses.boxes import BoxPair


def random_boxes(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 10
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 5 + 0.5
    return torch.cat((xy, xy + wh), -1)


# torchvision's ops/boxes.py semantics, written plainly (boxes (N, 4) x (M, 4) -> (N, M)).
def ref_iou(b1, b2):
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, None, :2], b2[None, :, :2])
    rb = torch.min(b1[:, None, 2:], b2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None] - inter
    return inter / union, union


def ref_giou(b1, b2):
    iou, union = ref_iou(b1, b2)
    lt = torch.min(b1[:, None, :2], b2[None, :, :2])
    rb = torch.max(b1[:, None, 2:], b2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[..., 0] * wh[..., 1]
    return iou - (area - union) / area


def ref_diou(b1, b2):
    iou, _ = ref_iou(b1, b2)
    lt = torch.min(b1[:, None, :2], b2[None, :, :2])
    rb = torch.max(b1[:, None, 2:], b2[None, :, 2:])
    diag = ((rb - lt) ** 2).sum(-1)
    c1 = (b1[:, :2] + b1[:, 2:]) / 2
    c2 = (b2[:, :2] + b2[:, 2:]) / 2
    dist = ((c1[:, None] - c2[None]) ** 2).sum(-1)
    return iou - dist / diag, iou


def ref_ciou(b1, b2):
    diou, iou = ref_diou(b1, b2)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = 4 / math.pi ** 2 * (torch.atan(w1 / h1)[:, None] - torch.atan(w2 / h2)[None]) ** 2
    alpha = v / (1 - iou + v)
    return diou - alpha * v


REFERENCES = {'iou': lambda a, b: ref_iou(a, b)[0], 'giou': ref_giou,
              'diou': lambda a, b: ref_diou(a, b)[0], 'ciou': ref_ciou}


@pytest.mark.parametrize('mode', ['iou', 'giou', 'diou', 'ciou'])
def test_pairwise_matches_torchvision_formulas(mode):
    a, b = random_boxes(7, 0), random_boxes(5, 1)
    expected = REFERENCES[mode](a, b)
    got = box_iou(a, b, mode=mode)
    assert got.shape == (7, 5)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    # aligned is the diagonal of the pairwise matrix
    torch.testing.assert_close(box_iou(a[:5], b, mode=mode, aligned=True),
                               torch.diagonal(REFERENCES[mode](a[:5], b)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('mode', ['iou', 'giou'])
def test_pairwise_matches_mmdet_bbox_overlaps(mode):
    pytest.importorskip('mmcv.ops')
    from mmdet.structures.bbox import bbox_overlaps
    a, b = random_boxes(6, 2, torch.float32), random_boxes(4, 3, torch.float32)
    a[0] = torch.tensor([1.0, 1.0, 1.0, 1.0])  # zero area: mmdet's eps floor on the union
    b[0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(box_iou(a, b, mode=mode), bbox_overlaps(a, b, mode=mode))
    torch.testing.assert_close(box_iou(a[:4], b, mode=mode, aligned=True),
                               bbox_overlaps(a[:4], b, mode=mode, is_aligned=True))


# (box a, box b, IoU, GIoU, DIoU, CIoU), derived by hand.
HAND_CASES = [
    # unit boxes sharing a corner: union 2, enclosing 2x2, rho^2 = 2, c^2 = 8
    ([0, 0, 1, 1], [1, 1, 2, 2], 0.0, -0.5, -0.25, -0.25),
    # sharing an edge: union 2, enclosing 2x1, rho^2 = 1, c^2 = 5
    ([0, 0, 1, 1], [1, 0, 2, 1], 0.0, 0.0, -0.2, -0.2),
    # nested, same centre and aspect: IoU = 4/16, enclosing = outer box
    ([0, 0, 4, 4], [1, 1, 3, 3], 0.25, 0.25, 0.25, 0.25),
    # identical
    ([1, 2, 4, 6], [1, 2, 4, 6], 1.0, 1.0, 1.0, 1.0),
    # half overlap: inter 2, union 6, enclosing 3x2 (area 6), rho^2 = 1, c^2 = 13
    ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3, 1 / 3, 1 / 3 - 1 / 13, 1 / 3 - 1 / 13),
    # same centre, crossed 4x1 and 1x4: inter 1, union 7, enclosing 4x4,
    # v = 4/pi^2 (atan 4 - atan 1/4)^2, alpha = v / (1 - 1/7 + v)
    ([0, 1.5, 4, 2.5], [1.5, 0, 2.5, 4], 1 / 7, 1 / 7 - 9 / 16, 1 / 7, None),
]


@pytest.mark.parametrize('a, b, iou, giou, diou, ciou', HAND_CASES)
def test_hand_derived(a, b, iou, giou, diou, ciou):
    a, b = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    if ciou is None:
        v = 4 / math.pi ** 2 * (math.atan(4) - math.atan(0.25)) ** 2
        ciou = diou - v / (1 - iou + v) * v
    for mode, expected in zip(('iou', 'giou', 'diou', 'ciou'), (iou, giou, diou, ciou)):
        got = box_iou(a, b, mode=mode, aligned=True, eps=1e-12)
        assert got.item() == pytest.approx(expected, abs=1e-9), mode


def test_box_pair_terms_by_hand():
    pair = BoxPair(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, 0.0, 3.0, 3.0]))
    assert (pair.inter.item(), pair.union.item()) == (2.0, 8.0)
    assert (pair.enclose_w.item(), pair.enclose_h.item()) == (3.0, 3.0)
    assert (pair.dx.item(), pair.dy.item()) == (1.0, 0.5)
    assert (pair.rho2.item(), pair.c2.item()) == (1.25, 18.0)
    # inverted box: its negative "area" never makes the union negative
    inverted = BoxPair(torch.tensor([4.0, 0.0, 0.0, 4.0]), torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert inverted.union.item() == 0.0 and inverted.inter.item() == 0.0


def test_box_convert_roundtrip_and_values():
    xyxy = torch.tensor([[1.0, 2.0, 4.0, 8.0], [-1.0, 0.0, 1.0, 0.5]])
    xywh = torch.tensor([[1.0, 2.0, 3.0, 6.0], [-1.0, 0.0, 2.0, 0.5]])
    cxcywh = torch.tensor([[2.5, 5.0, 3.0, 6.0], [0.0, 0.25, 2.0, 0.5]])
    for fmt, boxes in (('xywh', xywh), ('cxcywh', cxcywh), ('xyxy', xyxy)):
        torch.testing.assert_close(box_convert(xyxy, 'xyxy', fmt), boxes)
        torch.testing.assert_close(box_convert(boxes, fmt, 'xyxy'), xyxy)
    torch.testing.assert_close(box_convert(xywh, 'xywh', 'cxcywh'), cxcywh)
    torch.testing.assert_close(box_area(cxcywh, 'cxcywh'), torch.tensor([18.0, 1.0]))


@pytest.mark.parametrize('fmt', ['xywh', 'cxcywh'])
@pytest.mark.parametrize('mode', ['iou', 'giou', 'diou', 'ciou'])
def test_box_formats_equivalent(fmt, mode):
    a, b = random_boxes(4, 4), random_boxes(3, 5)
    torch.testing.assert_close(
        box_iou(box_convert(a, 'xyxy', fmt), box_convert(b, 'xyxy', fmt), mode, box_format=fmt),
        box_iou(a, b, mode))


def test_batched_pairwise():
    a, b = random_boxes(6, 6).view(2, 3, 4), random_boxes(8, 7).view(2, 4, 4)
    got = box_iou(a, b, 'giou')
    assert got.shape == (2, 3, 4)
    for i in range(2):
        torch.testing.assert_close(got[i], ref_giou(a[i], b[i]))


def test_empty_and_half():
    boxes = random_boxes(3, 8, torch.float32)
    assert box_iou(torch.zeros(0, 4), boxes).shape == (0, 3)
    assert box_iou(boxes, torch.zeros(0, 4), 'ciou').shape == (3, 0)
    half = box_iou(boxes.half(), boxes.half(), 'diou')
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), box_iou(boxes, boxes, 'diou'), atol=2e-3, rtol=0)


def test_degenerate_pairwise_is_finite():
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0],
                          [0.0, 0.0, 1.0, 1.0]])
    for mode in ('iou', 'giou', 'diou', 'ciou'):
        assert torch.isfinite(box_iou(boxes, boxes, mode)).all(), mode


@pytest.mark.parametrize('kwargs, match', [
    (dict(mode='miou'), 'mode'),
    (dict(box_format='xyzw'), 'box_format'),
])
def test_bad_arguments(kwargs, match):
    boxes = random_boxes(2)
    with pytest.raises(ValueError, match=match):
        box_iou(boxes, boxes, **kwargs)


def test_bad_shapes():
    boxes = random_boxes(3)
    with pytest.raises(ValueError, match=r'boxes1 must have shape \(\.\.\., 4\), got \(3, 5\)'):
        box_iou(torch.zeros(3, 5), boxes)
    with pytest.raises(ValueError, match='boxes2 must have the shape of boxes1'):
        box_iou(boxes, boxes[:2], aligned=True)
    with pytest.raises(ValueError, match='in_fmt'):
        box_convert(boxes, 'yxyx')


def test_gradcheck_core_terms():
    """Each term of the core, CIoU's aspect term v included (CIoU's loss itself carries a
    detached alpha, so only its parts are true derivatives), in float64."""
    a = torch.tensor([[0.5, 0.3, 4.6, 3.4], [1.6, 1.2, 5.5, 6.1]], dtype=torch.float64,
                     requires_grad=True)
    b = torch.tensor([[0.0, 0.0, 4.0, 3.0], [1.0, 2.0, 6.0, 7.0]], dtype=torch.float64,
                     requires_grad=True)
    terms = (lambda p: p.inter, lambda p: p.union, lambda p: p.c2, lambda p: p.rho2,
             lambda p: p.aspect_v(), lambda p: p.giou(1e-7), lambda p: p.diou(1e-7),
             lambda p: p.scaled(0.7).iou(1e-7))
    for term in terms:
        assert torch.autograd.gradcheck(lambda x, y: term(BoxPair(x, y)), (a, b))


def test_point_and_line_boxes_have_bounded_gradients():
    """Coinciding zero-width boxes, a point inside a box: no gradient of order 1/eps."""
    a = torch.tensor([[0.0, 0.0, 0.0, 4.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 4.0, 0.0]],
                     requires_grad=True)
    b = torch.tensor([[0.0, 0.0, 0.0, 4.0], [0.0, 0.0, 4.0, 4.0], [1.0, 0.0, 3.0, 0.0]])
    pair = BoxPair(a, b)
    (pair.giou(1e-6) + pair.diou(1e-6) + pair.ciou(1e-6)).sum().backward()
    assert a.grad.abs().max() < 10
