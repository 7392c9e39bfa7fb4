"""CrossEntropyCustomLoss against mmdet 3.3.0's class of that name and hand-derived values."""
import math

import pytest
import torch
from mmdet.models.losses import CrossEntropyCustomLoss as MMDetLoss

from mmdet_losses.losses import CrossEntropyCustomLoss

C = 3


def _inputs(sigmoid=False, n=6, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(n, C + (0 if sigmoid else 1), generator=gen, dtype=dtype)
    labels = torch.randint(0, C + 1, (n,), generator=gen)
    weight = torch.rand(n, generator=gen, dtype=dtype) + 0.5
    return pred, labels, weight


@pytest.mark.parametrize('sigmoid', [False, True])
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('kw', [{}, {'use_weight': True}, {'avg_factor': 2.5},
                                {'class_weight': True}])
def test_matches_mmdet_values_and_gradients(sigmoid, reduction, kw):
    if reduction == 'sum' and 'avg_factor' in kw:
        pytest.skip('sum with avg_factor is refused by both')
    pred, labels, weight = _inputs(sigmoid, dtype=torch.float32)  # mmdet's BCE is float32
    ctor = dict(use_sigmoid=sigmoid, num_classes=C, reduction=reduction, loss_weight=1.5)
    if kw.get('class_weight'):
        ctor['class_weight'] = [0.5, 1.0, 2.0] + ([] if sigmoid else [0.25])
    call = {}
    if kw.get('use_weight'):
        call['weight'] = weight
    if 'avg_factor' in kw:
        call['avg_factor'] = kw['avg_factor']
    ours, theirs = CrossEntropyCustomLoss(**ctor), MMDetLoss(**ctor)
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    a, b = ours(p1, labels, **call), theirs(p2, labels, **call)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad)


def test_interface_matches_mmdet():
    for sigmoid in (False, True):
        ours = CrossEntropyCustomLoss(use_sigmoid=sigmoid, num_classes=C)
        theirs = MMDetLoss(use_sigmoid=sigmoid, num_classes=C)
        assert ours.custom_cls_channels and ours.custom_activation and ours.custom_accuracy
        assert ours.get_cls_channels(C) == theirs.get_cls_channels(C)
        pred, labels, _ = _inputs(sigmoid, n=8)
        torch.testing.assert_close(ours.get_activation(pred), theirs.get_activation(pred))
        torch.testing.assert_close(ours.get_accuracy(pred, labels)['acc_classes'],
                                   theirs.get_accuracy(pred, labels)['acc_classes'])


def test_hand_derived():
    loss = CrossEntropyCustomLoss(num_classes=2)
    value = loss(torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 2]))
    expected = (-(2 - math.log(math.exp(2) + 2)) + math.log(3)) / 2
    assert value.item() == pytest.approx(expected, rel=1e-6)
    scores = CrossEntropyCustomLoss(use_sigmoid=True, num_classes=2).get_activation(
        torch.tensor([[0.0, 0.0], [-100.0, -100.0]]))
    torch.testing.assert_close(scores, torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    acc = loss.get_accuracy(torch.tensor([[2.0, 0.0, 5.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
                            torch.tensor([0, 0, 2]))
    torch.testing.assert_close(acc['acc_classes'], torch.tensor([50.0]))


def test_gradcheck():
    pred, labels, weight = _inputs()
    loss = CrossEntropyCustomLoss(num_classes=C)
    assert torch.autograd.gradcheck(lambda p: loss(p, labels, weight), pred.requires_grad_())


def test_empty_input():
    loss = CrossEntropyCustomLoss(num_classes=C, reduction='sum')
    pred = torch.zeros(0, C + 1, requires_grad=True)
    out = loss(pred, torch.zeros(0, dtype=torch.long))
    assert out.item() == 0.0
    out.backward()
    assert loss.get_accuracy(pred, torch.zeros(0, dtype=torch.long))['acc_classes'] == 0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half(dtype):
    pred, labels, weight = _inputs(dtype=torch.float32)
    loss = CrossEntropyCustomLoss(num_classes=C)
    out = loss(pred.to(dtype), labels, weight.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), loss(pred, labels, weight), atol=2e-2, rtol=2e-2)


def test_nan_in_nan_out():
    pred, labels, _ = _inputs(dtype=torch.float32)
    pred[1, 2] = float('nan')
    pred.requires_grad_()
    out = CrossEntropyCustomLoss(num_classes=C, reduction='none')(pred, labels)
    assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2, 3]]).all()


@pytest.mark.parametrize('kwargs, name', [({'num_classes': -1}, 'num_classes'), ({'num_classes': 0}, 'num_classes'),
                                          ({'num_classes': 2.5}, 'num_classes'),
                                          ({'num_classes': 3, 'use_sigmoid': True,
                                            'use_mask': True}, 'use_mask'),
                                          ({'num_classes': 3, 'reduction': 'avg'}, 'reduction')])
def test_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        CrossEntropyCustomLoss(**kwargs)
    loss = CrossEntropyCustomLoss(num_classes=3)
    with pytest.raises(ValueError, match='num_classes'):
        loss.get_cls_channels(4)
    with pytest.raises(ValueError, match='cls_score'):
        loss.get_activation(torch.zeros(2, 2))


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('kw', [{}, {'use_weight': True}, {'avg_factor': 2.5}])
def test_focal_custom_matches_mmdet(reduction, kw):
    from mmdet.models.losses import FocalCustomLoss as MMDetFocal

    from mmdet_losses.losses import FocalCustomLoss
    if reduction == 'sum' and 'avg_factor' in kw:
        pytest.skip('sum with avg_factor is refused by both')
    pred, labels, weight = _inputs(True, dtype=torch.float32)
    call = {'weight': weight} if kw.get('use_weight') else {}
    call.update({k: v for k, v in kw.items() if k == 'avg_factor'})
    ctor = dict(num_classes=C, reduction=reduction, gamma=1.5, alpha=0.3, loss_weight=2.0)
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    a = FocalCustomLoss(**ctor)(p1, labels, **call)
    b = MMDetFocal(**ctor)(p2, labels, **call)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    ours, theirs = FocalCustomLoss(num_classes=C), MMDetFocal(num_classes=C)
    assert ours.get_cls_channels(C) == theirs.get_cls_channels(C) == C
    torch.testing.assert_close(ours.get_activation(pred), theirs.get_activation(pred))
    torch.testing.assert_close(ours.get_accuracy(pred, labels)['acc_classes'],
                               theirs.get_accuracy(pred, labels)['acc_classes'])


def test_focal_custom_hand_derived_and_errors():
    from mmdet_losses.losses import FocalCustomLoss
    # background row, logits 0: 2 x (1 - alpha) 0.5^2 log 2
    loss = FocalCustomLoss(num_classes=2, reduction='sum')
    value = loss(torch.zeros(1, 2), torch.tensor([2]))
    assert value.item() == pytest.approx(2 * 0.75 * 0.25 * math.log(2), rel=1e-6)
    pred = torch.zeros(2, C, dtype=torch.float64, requires_grad=True)
    out = FocalCustomLoss(num_classes=C)(pred, torch.tensor([0, 3]))
    assert torch.isfinite(out)
    for kwargs in ({'num_classes': 0}, {'num_classes': C, 'activated': True},
                   {'num_classes': C, 'use_sigmoid': False}):
        with pytest.raises((ValueError, TypeError)):
            FocalCustomLoss(**kwargs)
