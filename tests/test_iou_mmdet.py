"""IoU, GIoU, DIoU, CIoU (with the 0.5 gate) and SIoU (neg_gamma=True) against mmdet's own
losses: the same config arguments give the same values and gradients."""
import pytest
import torch
from _helpers import mmdet_loss

import mmdet_losses
from mmdet_losses.functional import iou as iou_module

pytest.importorskip('mmcv.ops', reason='mmdet.models needs mmcv')


def boxes(n, seed, scale=50.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * scale
    wh = torch.rand(n, 2, generator=g) * scale / 2 + scale / 25
    target = torch.cat((xy, xy + wh), -1)
    pred = target + (torch.rand(n, 4, generator=g) - 0.5) * wh.repeat(1, 2)
    return pred, target


def inputs():
    """Pixel-scale and normalised-scale boxes, plus mmdet-safe edge cases."""
    pred, target = zip(boxes(40, 0), boxes(40, 1, scale=1.0), boxes(10, 2, scale=0.01))
    pred, target = torch.cat(pred), torch.cat(target)
    extra_pred = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 10.0, 10.0],
                               [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 5.0, 5.0]])
    extra_target = torch.tensor([[1.0, 1.0, 2.0, 2.0], [2.0, 3.0, 5.0, 6.0],
                                 [100.0, 100.0, 130.0, 110.0], [2.0, 2.0, 5.0, 5.5]])
    return torch.cat((pred, extra_pred)), torch.cat((target, extra_target))


@pytest.fixture(params=['default', 'plain'])
def iou_path(request, monkeypatch):
    """The default path (the fused kernel where built) and the plain PyTorch path."""
    if request.param == 'plain':
        monkeypatch.setattr(iou_module, 'fused_iou_loss', lambda *args: None)
        monkeypatch.setattr(iou_module, 'fused_variant_loss', lambda *args: None)
    return request.param


CASES = [
    ('IoULoss', {}),  # mmdet's default mode: 'log'
    ('IoULoss', dict(mode='linear')),
    # mmdet floors the union at bbox_overlaps' own 1e-6 whatever the eps (only the IoU clamp
    # follows it); ours floors both at eps, so the same eps: 1e-6, mmdet's default
    ('IoULoss', dict(mode='square', eps=1e-6, loss_weight=3.0)),
    ('GIoULoss', {}),
    ('GIoULoss', dict(eps=1e-6, loss_weight=2.0)),
    ('DIoULoss', {}),
    ('DIoULoss', dict(eps=1e-7, loss_weight=5.0)),
    ('CIoULoss', {}),
    ('CIoULoss', dict(eps=1e-7, loss_weight=2.0)),
]


@pytest.mark.parametrize('name, kwargs', CASES, ids=[f'{n}-{k}' for n, k in CASES])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_same_values_and_gradients_as_mmdet(name, kwargs, reduction, iou_path):
    ours = mmdet_losses.MODELS.build(dict(type=f'mmdet_losses.{name}', reduction=reduction,
                                          **kwargs))
    theirs = mmdet_loss(name, reduction=reduction, **kwargs)
    pred, target = inputs()
    weight = torch.rand(len(pred), 4, generator=torch.Generator().manual_seed(3))
    for call in (dict(), dict(weight=weight), dict(weight=weight[:, 0])):
        p_ours, p_theirs = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
        got, expected = ours(p_ours, target, **call), theirs(p_theirs, target, **call)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        got.sum().backward()
        expected.sum().backward()
        torch.testing.assert_close(p_ours.grad, p_theirs.grad, rtol=1e-4, atol=1e-6)
    if reduction == 'mean':  # mmdet's heads: weight (N, 4) and avg_factor
        torch.testing.assert_close(ours(pred, target, weight, avg_factor=7.0),
                                   theirs(pred, target, weight, avg_factor=7.0))


def test_ciou_default_gate_matters():
    # IoU 2/3 > 0.5: alpha v counts; IoU 1/3 < 0.5: CIoU = DIoU, in both libraries
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 2.0, 6.0]])
    ours = mmdet_losses.CIoULoss(reduction='none')(pred, target)
    torch.testing.assert_close(ours, mmdet_loss('CIoULoss', reduction='none')(pred, target))
    diou = mmdet_losses.DIoULoss(reduction='none')(pred, target)
    assert ours[0] > diou[0] and ours[1] == diou[1]


def test_siou_paper_sign_is_mmdets_neg_gamma():
    pred, target = inputs()
    pred, target = pred[:80], target[:80]
    ours = mmdet_losses.SIoULoss(reduction='none')(pred, target)
    theirs = mmdet_loss('SIoULoss', reduction='none', neg_gamma=True)(pred, target)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    other_sign = mmdet_loss('SIoULoss', reduction='none', neg_gamma=False)(pred, target)
    assert (ours - other_sign).abs().max() > 1e-2


def test_eiou_is_not_mmdets_extended_iou():
    pred = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
    # Efficient-IoU: 1 - 1/2 + 0 + 0 + 4/16; mmdet's Extended-IoU: smoothed 1 - IoU
    assert mmdet_losses.EIoULoss()(pred, target).item() == pytest.approx(0.75, rel=1e-5)
    assert mmdet_loss('EIoULoss')(pred, target).item() == pytest.approx(0.5 - 0.05, rel=1e-4)


@pytest.mark.parametrize('name', ['CIoULoss', 'SIoULoss'])
def test_finite_where_mmdet_is_not(name):
    """Identical boxes: mmdet's CIoU is 0/0 in alpha (with eps=1e-7 the IoU rounds to 1);
    a point box: mmdet's SIoU divides 0 by 0. Ours: finite values and gradients."""
    pred = torch.tensor([[2.0, 2.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[2.0, 2.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    theirs = mmdet_loss(name, eps=1e-7, reduction='none')(pred, target)
    ours = getattr(mmdet_losses, name)(eps=1e-7, reduction='none')(pred, target)
    ours.sum().backward()
    assert torch.isfinite(ours).all() and torch.isfinite(pred.grad).all()
    assert ours[0].item() == pytest.approx(0.0, abs=1e-6)
    pred.grad = None
    theirs.sum().backward()
    assert not (torch.isfinite(theirs).all() and torch.isfinite(pred.grad).all())
