"""Classification losses against mmdet's own classes of the same names (the drop-in promise):
equal values for every combination of weight, avg_factor and reduction_override, and of the
loss's own options (class_weight, ignore_index, avg_non_ignore, use_sigmoid, activated, ...)."""
import itertools
import warnings

import pytest
import torch
from _helpers import mmdet_loss

import mmdet_losses

pytest.importorskip('mmcv.ops', reason='mmdet (the reference) needs mmcv')

N, C = 9, 4
# reduction_override None means the module's own 'mean': the same path as 'mean'
CALLS = list(itertools.product([False, True], [None, 5.0], ['none', 'mean', 'sum']))
CALL_IDS = [f'w{int(w)}-avg{a}-{r}' for w, a, r in CALLS]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _compare(ours, ref, pred, target, weight, avg_factor, reduction_override, **tol):
    kwargs = dict(weight=weight, avg_factor=avg_factor, reduction_override=reduction_override)
    if avg_factor is not None and reduction_override == 'sum':
        with pytest.raises(ValueError):
            ref(pred, target, **kwargs)
        with pytest.raises(ValueError):
            ours(pred, target, **kwargs)
        return
    leaf, ref_leaf = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    out, expect = ours(leaf, target, **kwargs), ref(ref_leaf, target, **kwargs)
    torch.testing.assert_close(out, expect, **tol)
    out.sum().backward()
    expect.sum().backward()
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, **tol)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
@pytest.mark.parametrize('class_weight', [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize('ignore_index', [None, 2])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_cross_entropy_softmax(use_weight, avg_factor, reduction_override, class_weight,
                               ignore_index, avg_non_ignore):
    gen = _gen(0)
    pred = torch.randn(N, C, generator=gen) * 2
    target = torch.randint(0, C, (N,), generator=gen)
    target[[1, 5]] = -100 if ignore_index is None else ignore_index
    weight = torch.rand(N, generator=gen) if use_weight else None
    params = dict(class_weight=class_weight, ignore_index=ignore_index,
                  avg_non_ignore=avg_non_ignore, loss_weight=1.3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = mmdet_loss('CrossEntropyLoss', **params)
    _compare(mmdet_losses.CrossEntropyLoss(**params), ref, pred, target, weight, avg_factor,
             reduction_override)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
@pytest.mark.parametrize('class_weight', [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize('ignore_index', [7])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('module', ['CrossEntropyLoss', 'BinaryCrossEntropyLoss'])
def test_cross_entropy_sigmoid_with_index_labels(use_weight, avg_factor, reduction_override,
                                                 class_weight, ignore_index, avg_non_ignore,
                                                 module):
    gen = _gen(1)
    pred = torch.randn(N, C, generator=gen) * 2
    target = torch.randint(0, C + 1, (N,), generator=gen)  # C is background
    target[[2, 6]] = -100 if ignore_index is None else ignore_index
    weight = torch.rand(N, generator=gen) if use_weight else None
    params = dict(ignore_index=ignore_index, avg_non_ignore=avg_non_ignore, loss_weight=0.7)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = mmdet_loss('CrossEntropyLoss', use_sigmoid=True, class_weight=class_weight,
                         **params)
    if module == 'CrossEntropyLoss':
        ours = mmdet_losses.CrossEntropyLoss(use_sigmoid=True, class_weight=class_weight,
                                             **params)
    else:  # mmdet's sigmoid class_weight is torch's pos_weight
        ours = mmdet_losses.BinaryCrossEntropyLoss(pos_weight=class_weight, **params)
    _compare(ours, ref, pred, target, weight, avg_factor, reduction_override)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
def test_cross_entropy_sigmoid_with_dense_targets(use_weight, avg_factor, reduction_override):
    gen = _gen(2)
    pred = torch.randn(N, C, generator=gen)
    target = (torch.rand(N, C, generator=gen) > 0.7).float()
    weight = torch.rand(N, C, generator=gen) if use_weight else None
    _compare(mmdet_losses.CrossEntropyLoss(use_sigmoid=True),
             mmdet_loss('CrossEntropyLoss', use_sigmoid=True), pred, target, weight,
             avg_factor, reduction_override)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5)])
@pytest.mark.parametrize('target_kind', ['index', 'one_hot'])
@pytest.mark.parametrize('activated', [False, True])
def test_focal(use_weight, avg_factor, reduction_override, gamma, alpha, target_kind,
               activated):
    gen = _gen(3)
    pred = torch.randn(N, C, generator=gen) * 3
    if activated:
        pred = pred.sigmoid()
    labels = torch.randint(0, C + 1, (N,), generator=gen)
    target = labels if target_kind == 'index' else torch.nn.functional.one_hot(labels, C + 1)[
        :, :C]
    weight = torch.rand(N, generator=gen) if use_weight else None
    params = dict(gamma=gamma, alpha=alpha, activated=activated, loss_weight=2.0)
    _compare(mmdet_losses.FocalLoss(use_sigmoid=True, **params),
             mmdet_loss('FocalLoss', use_sigmoid=True, **params), pred, target, weight,
             avg_factor, reduction_override)


@pytest.mark.parametrize('weight_shape', [(N, C), (N * C,)])
def test_focal_per_element_weights(weight_shape):
    gen = _gen(4)
    pred = torch.randn(N, C, generator=gen)
    labels = torch.randint(0, C + 1, (N,), generator=gen)
    weight = torch.rand(*weight_shape, generator=gen)
    _compare(mmdet_losses.FocalLoss(), mmdet_loss('FocalLoss'), pred, labels, weight, 3.0, None)


def test_default_reduction_and_gamma_zero():
    gen = _gen(8)
    pred = torch.randn(N, C, generator=gen)
    labels = torch.randint(0, C + 1, (N,), generator=gen)
    # (alpha < 0 is not compared: mmdet has no "disabled" alpha, it would weight by -alpha)
    for params in (dict(gamma=0.0), dict(gamma=2.0, reduction="sum")):
        _compare(mmdet_losses.FocalLoss(**params), mmdet_loss('FocalLoss', **params), pred,
                 labels, None, None, None)
    _compare(mmdet_losses.CrossEntropyLoss(reduction='sum'),
             mmdet_loss('CrossEntropyLoss', reduction='sum'), pred, labels % C, None, None, None)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
@pytest.mark.parametrize('iou_weighted', [True, False])
def test_varifocal(use_weight, avg_factor, reduction_override, iou_weighted):
    gen = _gen(5)
    pred = torch.randn(N, C, generator=gen) * 2
    target = torch.rand(N, C, generator=gen) * (torch.rand(N, C, generator=gen) > 0.6)
    weight = torch.rand(N, C, generator=gen) if use_weight else None
    params = dict(alpha=0.6, gamma=1.5, iou_weighted=iou_weighted)
    _compare(mmdet_losses.VarifocalLoss(**params), mmdet_loss('VarifocalLoss', **params), pred,
             target, weight, avg_factor, reduction_override)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
@pytest.mark.parametrize('target_kind', ['tuple', 'dense'])
@pytest.mark.parametrize('activated', [False, True])
def test_quality_focal(use_weight, avg_factor, reduction_override, target_kind, activated):
    gen = _gen(6)
    pred = torch.randn(N, C, generator=gen) * 2
    if activated:
        pred = pred.sigmoid()
    labels = torch.randint(0, C + 1, (N,), generator=gen)
    scores = torch.rand(N, generator=gen)
    if target_kind == 'tuple':
        target = (labels, scores)
    else:
        target = torch.zeros(N, C + 1)
        target[torch.arange(N), labels] = scores
        target = target[:, :C]
    weight = torch.rand(N, generator=gen) if use_weight else None
    params = dict(beta=1.5, activated=activated, loss_weight=0.8)
    _compare(mmdet_losses.QualityFocalLoss(**params), mmdet_loss('QualityFocalLoss', **params),
             pred, target, weight, avg_factor, reduction_override)


@pytest.mark.parametrize('use_weight,avg_factor,reduction_override', CALLS, ids=CALL_IDS)
def test_distribution_focal(use_weight, avg_factor, reduction_override):
    gen = _gen(7)
    pred = torch.randn(N, 8, generator=gen)
    target = torch.rand(N, generator=gen) * 6.99
    weight = torch.rand(N, generator=gen) if use_weight else None
    _compare(mmdet_losses.DistributionFocalLoss(loss_weight=0.25),
             mmdet_loss('DistributionFocalLoss', loss_weight=0.25), pred, target, weight,
             avg_factor, reduction_override)
