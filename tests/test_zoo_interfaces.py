"""The same-name differences with mmdet (SIoULoss(neg_gamma), EIoULoss vs ExtendedIoULoss) and
the interfaces of mmyolo (YOLOIoULoss) and mmpretrain (LabelSmoothLoss, AsymmetricLoss,
CrossEntropyLoss(use_soft)).

References: mmdet 3.3's classes (installed) where they exist; otherwise the formulas of mmyolo
0.6's ``bbox_overlaps`` and mmpretrain's losses, written plainly below (neither library can be
installed beside mmcv 2.1.0).
"""
import math

import pytest
import torch

import mmdet_losses
from mmdet_losses import MODELS
from mmdet_losses import functional as F

NAN, INF = float('nan'), float('inf')


def _xyxy(n, seed=0, spread=3.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 20
    pred = torch.cat((xy, xy + 1 + torch.rand(n, 2, generator=gen) * 10), 1)
    target = pred + torch.randn(n, 4, generator=gen) * spread
    target = torch.cat((torch.minimum(target[:, :2], target[:, 2:]),
                        torch.maximum(target[:, :2], target[:, 2:])), 1)
    return pred.to(dtype), target.to(dtype)


def _value_and_grad(fn, pred, *args):
    x = pred.detach().clone().requires_grad_(True)
    out = fn(x, *args)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), grad


# ------------------------------------------------------------------ SIoULoss(neg_gamma)
@pytest.mark.parametrize('neg_gamma', [True, False])
def test_siou_neg_gamma_equals_mmdet(neg_gamma):
    from mmdet.models.losses import SIoULoss as MMDetSIoU
    pred, target = _xyxy(300, spread=4.0)
    ours = mmdet_losses.SIoULoss(neg_gamma=neg_gamma, reduction='none')
    theirs = MMDetSIoU(neg_gamma=neg_gamma, reduction='none')
    v1, g1 = _value_and_grad(ours, pred, target)
    v2, g2 = _value_and_grad(theirs, pred, target)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


def test_siou_default_is_the_paper_and_false_is_mmdets_sign():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
    # centre offset (1, 0), enclosing 3 x 2: rho_x = 1/9, angle cost 0, gamma 2, equal shapes
    paper = 1 - 1 / 3 + (1 - math.exp(-2 / 9)) / 2
    mmdet_sign = 1 - 1 / 3 + (1 - math.exp(2 / 9)) / 2
    assert mmdet_losses.SIoULoss()(pred, target).item() == pytest.approx(paper, abs=1e-5)
    assert mmdet_losses.SIoULoss(neg_gamma=False)(pred, target).item() == \
        pytest.approx(mmdet_sign, abs=1e-5)
    # mmdet's sign: far apart boxes reach the clamp, loss 0 and no gradient
    far = torch.tensor([[100.0, 0.0, 102.0, 2.0]], requires_grad=True)
    loss = mmdet_losses.SIoULoss(neg_gamma=False)(far, target)
    loss.backward()
    assert loss.item() == 0.0 and far.grad.abs().max().item() == 0.0


def test_siou_neg_gamma_false_contract():
    pred, target = _xyxy(6)
    loss = mmdet_losses.SIoULoss(neg_gamma=False)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), pred.requires_grad_(True))
    empty = torch.zeros(0, 4, requires_grad=True)
    out = loss(empty, torch.zeros(0, 4))
    out.backward()
    assert out.item() == 0.0
    half = loss(pred.half(), target.float())
    assert half.dtype == torch.float16
    assert half.item() == pytest.approx(loss(pred.half().float(), target.float()).item(),
                                        abs=1e-3)
    bad = pred.detach().clone().float()
    bad[1, 2] = INF
    out = mmdet_losses.SIoULoss(neg_gamma=False, reduction='none')(bad.requires_grad_(True),
                                                                   target.float())
    out.sum().backward()
    assert not torch.isfinite(out[1]) and torch.isfinite(out[0])
    assert not torch.isfinite(bad.grad[1]).any()
    with pytest.raises(TypeError, match='neg_gamma'):
        mmdet_losses.SIoULoss(neg_gamma=1)
    with pytest.raises(TypeError, match='neg_gamma'):
        F.siou_loss(pred, target, neg_gamma='no')


def test_siou_neg_gamma_from_an_mmdet_config():
    loss = MODELS.build(dict(type='mmdet_losses.SIoULoss', neg_gamma=False, loss_weight=2.0))
    assert loss.neg_gamma is False and loss.loss_weight == 2.0


# ------------------------------------------------------------- EIoULoss / ExtendedIoULoss
@pytest.mark.parametrize('smooth_point', [0.1, 0.5])
def test_extended_iou_equals_mmdets_eiou(smooth_point):
    from mmdet.models.losses import EIoULoss as MMDetEIoU
    far, near = _xyxy(300, spread=6.0), _xyxy(100, seed=1, spread=0.1)
    pred, target = torch.cat((far[0], near[0])), torch.cat((far[1], near[1]))
    ours = mmdet_losses.ExtendedIoULoss(smooth_point=smooth_point, reduction='none')
    theirs = MMDetEIoU(smooth_point=smooth_point, reduction='none')
    v1, g1 = _value_and_grad(ours, pred, target)
    v2, g2 = _value_and_grad(theirs, pred, target)
    assert (v2 > 1).any() and (v2 < smooth_point).any()  # disjoint and the quadratic part
    torch.testing.assert_close(v1, v2, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-7)
    # reduction, weight of the boxes' shape, avg_factor, loss_weight as mmdet
    weight = torch.rand(400, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kw = dict(weight=weight, avg_factor=37.0)
    torch.testing.assert_close(
        mmdet_losses.ExtendedIoULoss(smooth_point=smooth_point, loss_weight=2.0)(pred, target,
                                                                                 **kw),
        MMDetEIoU(smooth_point=smooth_point, loss_weight=2.0)(pred, target, **kw))


def test_extended_iou_hand_values():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]] * 3)
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0],     # IoU 1/3: 1 - 1/3 - 0.05
                           [3.0, 0.0, 5.0, 2.0],     # gap 1: I = -1 * 2, U = 10
                           [0.0, 0.0, 2.0, 2.1]])    # 1 - 4/4.2 < 0.1: quadratic
    loss = mmdet_losses.ExtendedIoULoss(reduction='none')(pred, target)
    small = 1 - 4 / 4.2
    torch.testing.assert_close(loss, torch.tensor([2 / 3 - 0.05, 1.2 - 0.05,
                                                   small ** 2 / 0.2]), rtol=1e-5, atol=1e-6)


def test_extended_iou_contract():
    pred, target = _xyxy(6)
    loss = mmdet_losses.ExtendedIoULoss()
    assert torch.autograd.gradcheck(lambda p: loss(p, target), pred.requires_grad_(True))
    empty = torch.zeros(0, 4, requires_grad=True)
    out = loss(empty, torch.zeros(0, 4))
    out.backward()
    assert out.item() == 0.0 and empty.grad.shape == (0, 4)
    assert loss(pred.half(), target.float()).dtype == torch.float16
    assert loss(pred.bfloat16(), target.float()).dtype == torch.bfloat16
    for bad in (NAN, INF, -INF):
        p = pred.detach().clone()
        p[2, 1] = bad
        p.requires_grad_(True)
        out = mmdet_losses.ExtendedIoULoss(reduction='none')(p, target)
        out.sum().backward()
        assert torch.isfinite(out[[0, 1, 3, 4, 5]]).all() and not torch.isfinite(out[2])
        assert not torch.isfinite(p.grad[2]).any()
    for value, exc in ((0.0, ValueError), (-1.0, ValueError), (NAN, ValueError),
                       ('0.1', TypeError), (True, TypeError)):
        with pytest.raises(exc, match='smooth_point'):
            mmdet_losses.ExtendedIoULoss(smooth_point=value)


def test_eiou_refuses_smooth_point_and_names_extended_iou():
    with pytest.raises(TypeError, match='ExtendedIoULoss'):
        mmdet_losses.EIoULoss(smooth_point=0.1)
    with pytest.raises(TypeError, match='ExtendedIoULoss'):
        MODELS.build(dict(type='mmdet_losses.EIoULoss', smooth_point=0.1, loss_weight=1.0))
    # mmdet's Extended-IoU config, renamed, builds and keeps its arguments
    loss = MODELS.build(dict(type='mmdet_losses.ExtendedIoULoss', smooth_point=0.2, eps=1e-6,
                             loss_weight=5.0))
    assert (loss.smooth_point, loss.eps, loss.loss_weight) == (0.2, 1e-6, 5.0)


# ------------------------------------------------------------------------ YOLOIoULoss
def mmyolo_overlaps(pred, target, iou_mode, bbox_format, eps=1e-7):
    """mmyolo 0.6's ``bbox_overlaps``, written plainly (the reference)."""
    if bbox_format == 'xywh':  # centre x, centre y, w, h
        def corners(b):
            return torch.stack((b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2,
                                b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2), 1)
        pred, target = corners(pred), corners(target)
    x1, y1, x2, y2 = pred.unbind(1)
    X1, Y1, X2, Y2 = target.unbind(1)
    overlap = ((torch.min(x2, X2) - torch.max(x1, X1)).clamp(0)
               * (torch.min(y2, Y2) - torch.max(y1, Y1)).clamp(0))
    w1, h1, w2, h2 = x2 - x1, y2 - y1, X2 - X1, Y2 - Y1
    union = w1 * h1 + w2 * h2 - overlap + eps
    h1, h2 = h1 + eps, h2 + eps
    iou = overlap / union
    cw = (torch.max(x2, X2) - torch.min(x1, X1)).clamp(min=0)
    ch = (torch.max(y2, Y2) - torch.min(y1, Y1)).clamp(min=0)
    dx = (X1 + X2 - x1 - x2) / 2
    dy = (Y1 + Y2 - y1 - y2) / 2
    if iou_mode == 'ciou':
        v = 4 / math.pi ** 2 * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
        alpha = (v / (v - iou + 1 + eps)).detach()
        iou = iou - ((dx ** 2 + dy ** 2) / (cw ** 2 + ch ** 2 + eps) + alpha * v)
    elif iou_mode == 'giou':
        hull = cw * ch + eps
        iou = iou - (hull - union) / hull
    else:
        sigma = (dx ** 2 + dy ** 2).sqrt()
        sin_a, sin_b = dx.abs() / sigma, dy.abs() / sigma
        sin_alpha = torch.where(sin_a > 2 ** 0.5 / 2, sin_b, sin_a)
        angle = torch.cos(torch.arcsin(sin_alpha) * 2 - math.pi / 2)
        gamma = angle - 2
        distance = 2 - torch.exp(gamma * (dx / cw) ** 2) - torch.exp(gamma * (dy / ch) ** 2)
        ow = (w1 - w2).abs() / torch.max(w1, w2)
        oh = (h1 - h2).abs() / torch.max(h1, h2)
        shape = (1 - torch.exp(-ow)) ** 4 + (1 - torch.exp(-oh)) ** 4
        iou = iou - 0.5 * (distance + shape)
    return iou.clamp(-1.0, 1.0)


def _to_cxcywh(b):
    return torch.stack(((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0],
                        b[:, 3] - b[:, 1]), 1)


@pytest.mark.parametrize('iou_mode', ['ciou', 'giou', 'siou'])
@pytest.mark.parametrize('bbox_format', ['xywh', 'xyxy'])
def test_yolo_iou_loss_equals_mmyolos_formula(iou_mode, bbox_format):
    pred, target = _xyxy(300, spread=4.0)
    if bbox_format == 'xywh':
        pred, target = _to_cxcywh(pred), _to_cxcywh(target)
    loss_fn = mmdet_losses.YOLOIoULoss(iou_mode=iou_mode, bbox_format=bbox_format,
                                       reduction='none')
    loss, iou = loss_fn(pred, target)
    ref = mmyolo_overlaps(pred, target, iou_mode, bbox_format)
    torch.testing.assert_close(iou.detach(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.detach(), 1 - ref, rtol=1e-5, atol=1e-6)
    # gradients of the loss (mmyolo: loss_weight * weight_reduce_loss(1 - iou))
    x = pred.detach().clone().requires_grad_(True)
    loss_fn(x, target)[0].sum().backward()
    y = pred.detach().clone().requires_grad_(True)
    (1 - mmyolo_overlaps(y, target, iou_mode, bbox_format)).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-6)


def test_yolo_iou_loss_reduction_weight_avg_factor_and_return_iou():
    pred, target = _to_cxcywh(_xyxy(10)[0]), _to_cxcywh(_xyxy(10)[1])
    ref = 1 - mmyolo_overlaps(pred, target, 'ciou', 'xywh')
    weight4 = torch.rand(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = weight4.mean(-1)
    loss, iou = mmdet_losses.YOLOIoULoss(loss_weight=0.05)(pred, target, weight4, avg_factor=4)
    torch.testing.assert_close(loss, 0.05 * (ref * w).sum() / (4 + torch.finfo(torch.float32).eps))
    torch.testing.assert_close(iou, 1 - ref)  # per box, unweighted
    only = mmdet_losses.YOLOIoULoss(return_iou=False, reduction='sum')(pred, target, w)
    torch.testing.assert_close(only, (ref * w).sum())
    mean, _ = mmdet_losses.YOLOIoULoss()(pred, target, reduction_override='mean')
    torch.testing.assert_close(mean, ref.mean())
    # YOLOv5's head: loss_bbox(...) -> (loss, iou); iou.detach() is its objectness target
    built = MODELS.build(dict(type='mmdet_losses.YOLOIoULoss', bbox_format='xywh',
                              iou_mode='ciou', eps=1e-7, reduction='mean', loss_weight=0.05,
                              return_iou=True))
    out = built(pred.float(), target.float())
    assert isinstance(out, tuple) and out[1].shape == (10,)


def test_yolo_iou_loss_contract():
    pred, target = _xyxy(6)
    for mode in ('giou', 'siou'):
        loss = mmdet_losses.YOLOIoULoss(iou_mode=mode, bbox_format='xyxy', return_iou=False)
        assert torch.autograd.gradcheck(lambda p: loss(p, target),
                                        pred.detach().clone().requires_grad_(True))
    loss = mmdet_losses.YOLOIoULoss()
    empty = torch.zeros(0, 4, requires_grad=True)
    value, iou = loss(empty, torch.zeros(0, 4))
    value.backward()
    assert value.item() == 0.0 and iou.shape == (0,)
    half, half_iou = loss(pred.half(), target.float())
    assert half.dtype == half_iou.dtype == torch.float16
    for bad in (NAN, INF):
        p = pred.detach().clone()
        p[3, 0] = bad
        p.requires_grad_(True)
        out, iou = mmdet_losses.YOLOIoULoss(reduction='none', bbox_format='xyxy')(p, target)
        out.sum().backward()
        assert not torch.isfinite(out[3]) and not torch.isfinite(iou[3])
        assert torch.isfinite(out[[0, 1, 2, 4, 5]]).all()
        assert not torch.isfinite(p.grad[3]).any()
    with pytest.raises(ValueError, match='iou_mode'):
        mmdet_losses.YOLOIoULoss(iou_mode='diou')
    with pytest.raises(ValueError, match="bbox_format must be 'xywh' \\(centre"):
        mmdet_losses.YOLOIoULoss(bbox_format='cxcywh')
    with pytest.raises(TypeError, match='return_iou'):
        mmdet_losses.YOLOIoULoss(return_iou=1)
    with pytest.raises(ValueError, match='eps'):
        mmdet_losses.YOLOIoULoss(eps=0.0)
    with pytest.raises(ValueError, match='reduction_override'):
        loss(pred, target, reduction_override='avg')


# --------------------------------------------------------------- mmpretrain: label smoothing
def smoothed(label, num_classes, eps, mode):
    """mmpretrain's three smoothings of a one-hot-like label (the reference)."""
    if mode == 'original':
        return label * (1 - eps) + eps / num_classes
    if mode == 'classy_vision':
        return (label + eps / num_classes) / (1 + eps)
    return torch.where(label > 0, 1 - eps, eps).to(label.dtype)


def soft_ce(pred, label, class_weight=None):
    loss = -label * torch.log_softmax(pred, -1)
    if class_weight is not None:
        loss = loss * class_weight
    return loss.sum(-1)


def bce(pred, label, class_weight=None, pos_weight=None):
    p = torch.sigmoid(pred)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * label * torch.log(p) + (1 - label) * torch.log(1 - p))
    return loss if class_weight is None else loss * class_weight


@pytest.mark.parametrize('mode', ['original', 'classy_vision', 'multi_label'])
def test_label_smooth_loss_modes(mode):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    onehot = torch.nn.functional.one_hot(labels, 5).double()
    target = smoothed(onehot, 5, 0.1, mode)
    expected = bce(pred, target).mean() if mode == 'multi_label' else soft_ce(pred, target).mean()
    loss = mmdet_losses.LabelSmoothLoss(0.1, num_classes=5, mode=mode)
    torch.testing.assert_close(loss(pred, labels), expected)
    torch.testing.assert_close(loss(pred, labels.view(-1, 1)), expected)
    torch.testing.assert_close(loss(pred, onehot), expected)
    # mixup labels (one-hot-like) and a per-sample weight
    mixed = 0.7 * onehot + 0.3 * onehot.flip(0)
    weight = torch.rand(6, generator=gen, dtype=torch.float64)
    if mode != 'multi_label':
        ref = (soft_ce(pred, smoothed(mixed, 5, 0.1, mode)) * weight).sum() / 3.0
        torch.testing.assert_close(loss(pred, mixed, weight, avg_factor=3.0), ref,
                                   rtol=1e-6, atol=1e-9)


def test_label_smooth_loss_sigmoid_weights_and_errors():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 1])
    target = smoothed(torch.nn.functional.one_hot(labels, 3).double(), 3, 0.2, 'original')
    cw, pw = torch.tensor([1.0, 2.0, 0.5]).double(), torch.tensor([3.0, 1.0, 1.0]).double()
    loss = mmdet_losses.LabelSmoothLoss(0.2, use_sigmoid=True, class_weight=[1.0, 2.0, 0.5],
                                        pos_weight=[3.0, 1.0, 1.0], reduction='sum')
    torch.testing.assert_close(loss(pred, labels), bce(pred, target, cw, pw).sum())
    softmax = mmdet_losses.LabelSmoothLoss(0.2, class_weight=[1.0, 2.0, 0.5])
    torch.testing.assert_close(softmax(pred, labels), soft_ce(pred, target, cw).mean())
    assert torch.autograd.gradcheck(lambda p: loss(p, labels), pred.requires_grad_(True))
    with pytest.raises(ValueError, match='num_classes'):
        mmdet_losses.LabelSmoothLoss(0.1, num_classes=4)(pred, labels)
    with pytest.raises(ValueError, match='label_smooth_val'):
        mmdet_losses.LabelSmoothLoss(1.0)
    with pytest.raises(ValueError, match='mode'):
        mmdet_losses.LabelSmoothLoss(0.1, mode='classy')
    with pytest.raises(ValueError, match='pos_weight'):
        mmdet_losses.LabelSmoothLoss(0.1, pos_weight=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match='target'):
        mmdet_losses.LabelSmoothLoss(0.1)(pred, torch.tensor([0, 3, 1, 1]))
    with pytest.warns(UserWarning, match='use_sigmoid=True'):
        mmdet_losses.LabelSmoothLoss(0.1, mode='multi_label', use_sigmoid=False)


def test_label_smooth_and_asymmetric_contract():
    pred = torch.randn(3, 4, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1])
    for loss in (mmdet_losses.LabelSmoothLoss(0.1), mmdet_losses.AsymmetricLoss(),
                 mmdet_losses.AsymmetricLoss(gamma_pos=1.0, use_sigmoid=False)):
        empty = torch.zeros(0, 4, requires_grad=True)
        out = loss(empty, torch.zeros(0, dtype=torch.long))
        out.backward()
        assert out.item() == 0.0
        assert loss(pred.half(), labels).dtype == torch.float16
        assert loss(pred.bfloat16(), labels).dtype == torch.bfloat16
        for bad in (NAN, INF, -INF):
            p = pred.clone()
            p[1, 2] = bad
            p.requires_grad_(True)
            out = loss(p, labels, reduction_override='none')
            out.sum().backward()
            row = out[1]
            assert not torch.isfinite(row).all() and torch.isfinite(out[0]).all()
            assert not torch.isfinite(p.grad[1]).all()


# ----------------------------------------------------------------- mmpretrain: asymmetric
def asl(pred, target, gamma_pos, gamma_neg, clip, eps=1e-8, sigmoid=True):
    p = torch.sigmoid(pred) if sigmoid else torch.softmax(pred, -1)
    neg = (1 - p + clip).clamp(max=1) if clip > 0 else 1 - p
    pt = neg * (1 - target) + p * target
    return -torch.log(pt.clamp(min=eps)) * (1 - pt).pow(gamma_pos * target
                                                         + gamma_neg * (1 - target))


@pytest.mark.parametrize('kwargs', [{}, dict(gamma_pos=1.0, gamma_neg=3.0, clip=0.0),
                                    dict(use_sigmoid=False, clip=0.1, gamma_pos=0.5)])
def test_asymmetric_loss_equals_the_formula(kwargs):
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(5, 4, generator=gen, dtype=torch.float64) * 2
    target = (torch.rand(5, 4, generator=gen) > 0.6).double()
    args = dict(gamma_pos=0.0, gamma_neg=4.0, clip=0.05)
    args.update({k: v for k, v in kwargs.items() if k != 'use_sigmoid'})
    ref = asl(pred, target, sigmoid=kwargs.get('use_sigmoid', True), **args)
    weight = torch.rand(5, generator=gen, dtype=torch.float64)
    loss = mmdet_losses.AsymmetricLoss(**kwargs, loss_weight=2.0)
    torch.testing.assert_close(loss(pred, target), 2 * ref.mean())
    torch.testing.assert_close(loss(pred, target, weight, reduction_override='sum'),
                               2 * (ref * weight[:, None]).sum())
    x = pred.clone().requires_grad_(True)
    loss(x, target).backward()
    y = pred.clone().requires_grad_(True)
    (2 * asl(y, target, sigmoid=kwargs.get('use_sigmoid', True), **args).mean()).backward()
    torch.testing.assert_close(x.grad, y.grad)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), pred.requires_grad_(True))


def test_asymmetric_loss_index_targets_and_errors():
    pred = torch.randn(3, 4, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1])
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    loss = mmdet_losses.AsymmetricLoss()
    torch.testing.assert_close(loss(pred, labels), loss(pred, onehot))
    torch.testing.assert_close(loss(pred, labels.view(-1, 1)), loss(pred, onehot))
    for kwargs, name in ((dict(gamma_neg=-1.0), 'gamma_neg'), (dict(clip=1.5), 'clip'),
                         (dict(eps=0.0), 'eps'), (dict(gamma_pos=NAN), 'gamma_pos')):
        with pytest.raises(ValueError, match=name):
            mmdet_losses.AsymmetricLoss(**kwargs)
    with pytest.raises(TypeError, match='use_sigmoid'):
        mmdet_losses.AsymmetricLoss(use_sigmoid='yes')
    with pytest.raises(ValueError, match='target'):
        loss(pred, onehot * 2)
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0, 4, 1]))


# ------------------------------------------------------- mmpretrain: CrossEntropyLoss(use_soft)
def test_cross_entropy_use_soft():
    gen = torch.Generator().manual_seed(4)
    pred = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    soft = torch.softmax(torch.randn(5, 3, generator=gen, dtype=torch.float64), -1)
    cw = [1.0, 0.5, 2.0]
    loss = mmdet_losses.CrossEntropyLoss(use_soft=True, class_weight=cw)
    torch.testing.assert_close(loss(pred, soft), soft_ce(pred, soft, torch.tensor(cw).double())
                               .mean())
    built = MODELS.build(dict(type='mmdet_losses.CrossEntropyLoss', use_soft=True,
                              loss_weight=1.0))
    torch.testing.assert_close(built(pred, soft), soft_ce(pred, soft).mean())
    with pytest.raises(ValueError, match='use_soft'):
        built(pred, torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match='use_soft'):
        mmdet_losses.CrossEntropyLoss(use_soft=True, use_sigmoid=True)
    with pytest.raises(TypeError, match='use_soft'):
        mmdet_losses.CrossEntropyLoss(use_soft=1)
    # mmdet's interface is unchanged: index targets without use_soft
    plain = mmdet_losses.CrossEntropyLoss()
    torch.testing.assert_close(plain(pred, torch.tensor([0, 1, 2, 0, 1])),
                               torch.nn.functional.cross_entropy(pred, torch.tensor([0, 1, 2,
                                                                                     0, 1])))


# ------------------------------------------------- the config check names the same-name cases
@pytest.mark.parametrize('loss, warned', [
    (dict(type='mmdet_losses.EIoULoss', loss_weight=1.0), 'ExtendedIoULoss'),
    (dict(type='mmdet_losses.SIoULoss', eps=1e-6), 'neg_gamma=False'),
    (dict(type='mmdet_losses.EIoULoss', gamma=0.0), None),
    (dict(type='mmdet_losses.SIoULoss', neg_gamma=True), None),
    (dict(type='mmdet_losses.SIoULoss', theta=4), None),
    (dict(type='mmdet_losses.ExtendedIoULoss', smooth_point=0.1), None)])
def test_config_check_warns_on_same_name_losses_with_mmdets_arguments(loss, warned):
    from mmdet_losses.config_check import check_config
    cfg = dict(model=dict(type='RetinaNet', bbox_head=dict(
        type='RetinaHead', num_classes=3, in_channels=8, reg_decoded_bbox=True,
        loss_cls=dict(type='mmdet_losses.FocalLoss', use_sigmoid=True), loss_bbox=loss)))
    problems = [p for p in check_config(cfg) if p.path.endswith('loss_bbox.type')]
    if warned is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].level == 'warning'
        assert warned in problems[0].fix
