"""mmdet 3.3.0's DiceLoss, GaussianFocalLoss, KnowledgeDistillationKLDivLoss, BoundedIoULoss,
L2Loss and MarginL2Loss as drop-ins: values and gradients equal mmdet's own classes on valid
random inputs (every reduction, weight, avg_factor), hand-derived values, float64 gradcheck,
empty input, half precision computed in float32, NaN in -> NaN out, and bad arguments refused
naming them. The contract suite (tests/test_contract*.py) covers the rest for these classes
through tests/_zoo_inputs.py."""
import math

import pytest
import torch

import mmdet_losses as M
from mmdet_losses import functional as F

mmdet_losses_mod = pytest.importorskip('mmdet.models.losses', reason='mmdet 3.3.0 reference')

NAN = float('nan')
REDUCTIONS = ('none', 'mean', 'sum')


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _compare(ours, theirs, make_inputs, calls, rtol=1e-5, atol=1e-6, clone_inputs=False):
    """For each call kwargs: the value and the gradient of pred equal mmdet's."""
    for kwargs in calls:
        values, grads = [], []
        for module in (ours, theirs):
            pred, *rest = make_inputs()
            leaf = pred.clone().requires_grad_(True)
            # mmdet's tracking losses write into pred and target: give them copies
            x = leaf * 1.0 if clone_inputs else leaf
            rest = [r.clone() if isinstance(r, torch.Tensor) and clone_inputs else r
                    for r in rest]
            out = module(x, *rest, **kwargs)
            (g,) = torch.autograd.grad(out.sum(), leaf)
            values.append(out.detach())
            grads.append(g)
        torch.testing.assert_close(values[0], values[1], rtol=rtol, atol=atol,
                                   msg=lambda m: f'value {kwargs}: {m}')
        torch.testing.assert_close(grads[0], grads[1], rtol=rtol, atol=atol,
                                   msg=lambda m: f'gradient {kwargs}: {m}')


def _standard_calls(weight):
    calls = [dict(reduction_override=r) for r in REDUCTIONS]
    calls += [dict(weight=weight, reduction_override=r) for r in REDUCTIONS]
    calls += [dict(weight=weight, avg_factor=3.5), dict(avg_factor=7.0),
              dict(weight=weight, avg_factor=3.5, reduction_override='none')]
    return calls


def _half_matches_float32(module, pred, *rest, **kwargs):
    for dtype in (torch.float16, torch.bfloat16):
        half = pred.to(dtype)
        got = module(half, *rest, **kwargs)
        assert got.dtype == dtype
        want = module(half.float(), *rest, **kwargs)
        info = torch.finfo(dtype)
        torch.testing.assert_close(got.float(), want.to(dtype).float(), rtol=info.eps,
                                   atol=info.eps)


def _empty_is_zero_in_graph(module, pred, *rest, **kwargs):
    for reduction in ('mean', 'sum'):
        leaf = pred.clone().requires_grad_(True)
        loss = module(leaf, *rest, reduction_override=reduction, **kwargs)
        assert float(loss.detach()) == 0.0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, leaf)
        assert g.shape == pred.shape


def _nan_gives_nan(module, pred, *rest, **kwargs):
    pred = pred.clone()
    pred.view(-1)[0] = NAN
    leaf = pred.requires_grad_(True)
    loss = module(leaf, *rest, **kwargs)
    assert torch.isnan(loss)
    (g,) = torch.autograd.grad(loss, leaf)
    assert not torch.isfinite(g).all()


def _refused(error, name, thunk):
    with pytest.raises(error, match=name):
        thunk()


# ================================================================================ DiceLoss
def _masks(seed=0, n=6, shape=(5, 7)):
    gen = _gen(seed)
    pred = torch.randn(n, *shape, generator=gen) * 2
    target = (torch.rand(n, *shape, generator=gen) > 0.5).float()
    return pred, target, 0.5 + torch.rand(n, generator=gen)


@pytest.mark.parametrize('ctor', [{}, dict(naive_dice=True), dict(naive_dice=True, eps=1.0),
                                  dict(eps=0.5, loss_weight=2.5),
                                  dict(activate=False, use_sigmoid=False)])
def test_dice_equals_mmdet(ctor):
    pred, target, weight = _masks()
    if ctor.get('activate') is False:
        pred = pred.sigmoid()
    _compare(M.DiceLoss(**ctor), mmdet_losses_mod.DiceLoss(**ctor),
             lambda: (pred, target), _standard_calls(weight))


def test_dice_accepts_bool_and_integer_masks_as_mmdet():
    pred, target, _ = _masks(1)
    for mask in (target.bool(), target.long()):
        torch.testing.assert_close(M.DiceLoss()(pred, mask),
                                   mmdet_losses_mod.DiceLoss()(pred, mask))


def test_dice_hand_values():
    # p = (1, 0), t = (1, 0): V-Net 1 - 2 / (1 + 1 + 2 eps); naive: (2 + eps) / (2 + eps) = 1
    p, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    eps = 0.1
    assert math.isclose(float(M.DiceLoss(activate=False, use_sigmoid=False, eps=eps)(p, t)),
                        1 - 2 / (2 + 2 * eps), rel_tol=1e-6)
    assert float(M.DiceLoss(activate=False, use_sigmoid=False, naive_dice=True,
                            eps=eps)(p, t)) == 0.0
    # p = (0.5, 0.5), t = (1, 0), eps = 0: V-Net 1 - 1 / (0.5 + 1) = 1/3; naive 1 - 1/2
    p = torch.tensor([[0.5, 0.5]])
    assert math.isclose(float(F.dice_loss(p, t, eps=0.0, activate=False)), 1 / 3,
                        rel_tol=1e-6)
    assert math.isclose(float(F.dice_loss(p, t, eps=0.0, activate=False, naive_dice=True)),
                        0.5, rel_tol=1e-6)
    # sigmoid(0) = 0.5: the activated form of the same
    assert math.isclose(float(M.DiceLoss(eps=0.0)(torch.zeros(1, 2), t)), 1 / 3, rel_tol=1e-6)


def test_dice_gradcheck_empty_half_nan():
    pred, target, weight = _masks(2, n=3, shape=(4,))
    for ctor in ({}, dict(naive_dice=True, eps=1.0)):
        loss = M.DiceLoss(**ctor)
        assert torch.autograd.gradcheck(lambda p: loss(p, target.double(), weight.double()),
                                        (pred.double().requires_grad_(),))
        _empty_is_zero_in_graph(loss, torch.zeros(0, 4), torch.zeros(0, 4))
        _half_matches_float32(loss, pred, target, weight)
        _nan_gives_nan(loss, pred, target)
    # +inf logit: sigmoid would hide it, the loss does not
    pred = pred.clone()
    pred[0, 0] = float('inf')
    out = M.DiceLoss(reduction='none')(pred, target)
    assert torch.isnan(out[0]) and torch.isfinite(out[1:]).all()


def test_dice_bad_arguments():
    _refused(ValueError, 'use_sigmoid', lambda: M.DiceLoss(use_sigmoid=False))
    _refused(TypeError, 'naive_dice', lambda: M.DiceLoss(naive_dice='yes'))
    _refused(TypeError, 'activate', lambda: M.DiceLoss(activate=1))
    _refused(ValueError, 'eps', lambda: M.DiceLoss(eps=-1.0))
    _refused(ValueError, 'eps', lambda: M.DiceLoss(eps=NAN))
    _refused(ValueError, 'pred', lambda: M.DiceLoss()(torch.zeros(3), torch.zeros(3)))
    _refused(ValueError, 'target', lambda: M.DiceLoss()(torch.zeros(2, 3), torch.zeros(2, 4)))
    _refused(ValueError, 'target', lambda: M.DiceLoss()(torch.zeros(1, 2),
                                                         torch.tensor([[0.0, 2.0]])))
    _refused(ValueError, 'weight', lambda: M.DiceLoss()(torch.zeros(2, 3), torch.zeros(2, 3),
                                                         torch.ones(3)))
    _refused(ValueError, 'reduction_override',
             lambda: M.DiceLoss()(torch.zeros(2, 3), torch.zeros(2, 3),
                                  reduction_override='avg'))


def test_dice_positional_order_is_mmdets():
    pred, target, weight = _masks(3)
    ours = M.DiceLoss()(pred, target, weight, 'sum', None)
    theirs = mmdet_losses_mod.DiceLoss()(pred, target, weight, 'sum', None)
    torch.testing.assert_close(ours, theirs)


# ======================================================================= GaussianFocalLoss
def _heatmap(seed=0, n=6, c=4):
    gen = _gen(seed)
    pred = torch.sigmoid(torch.randn(n, c, generator=gen) * 2).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(n, c, generator=gen) * 0.98
    target[torch.arange(n), torch.randint(0, c, (n,), generator=gen)] = 1.0
    return pred, target, 0.5 + torch.rand(n, c, generator=gen)


@pytest.mark.parametrize('ctor', [{}, dict(alpha=1.5, gamma=2.0), dict(pos_weight=2.0,
                                  neg_weight=0.5, loss_weight=3.0)])
def test_gaussian_focal_equals_mmdet(ctor):
    pred, target, weight = _heatmap()
    _compare(M.GaussianFocalLoss(**ctor), mmdet_losses_mod.GaussianFocalLoss(**ctor),
             lambda: (pred, target), _standard_calls(weight))


@pytest.mark.parametrize('ctor', [{}, dict(pos_weight=2.0, neg_weight=0.5)])
def test_gaussian_focal_pos_inds_equals_mmdet(ctor):
    pred, target, _ = _heatmap(1, n=8, c=3)
    pos_inds = torch.tensor([0, 3, 3, 6])
    pos_labels = torch.tensor([2, 0, 1, 2])
    kw = dict(pos_inds=pos_inds, pos_labels=pos_labels)
    calls = [dict(reduction_override='mean', **kw), dict(reduction_override='sum', **kw),
             dict(avg_factor=4.0, **kw), dict(avg_factor=0.0, **kw)]
    _compare(M.GaussianFocalLoss(**ctor), mmdet_losses_mod.GaussianFocalLoss(**ctor),
             lambda: (pred, target), calls)
    # 'none': the (N, C) map whose sum is mmdet's 'sum'
    none = M.GaussianFocalLoss(**ctor)(pred, target, reduction_override='none', **kw)
    assert none.shape == pred.shape
    torch.testing.assert_close(none.sum(), M.GaussianFocalLoss(**ctor)(
        pred, target, reduction_override='sum', **kw))


def test_gaussian_focal_hand_value():
    # p = 0.5 at a peak: -log(0.5) 0.5^2; p = 0.25 at t = 0.5: -log(0.75) 0.25^2 0.5^4
    got = F.gaussian_focal_loss(torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 0.5]]),
                                reduction='none')
    want = torch.tensor([[math.log(2) * 0.25, -math.log(0.75) * 0.0625 * 0.0625]])
    torch.testing.assert_close(got, want)


def test_gaussian_focal_gradcheck_empty_half_nan():
    pred, target, weight = _heatmap(2, n=3)
    loss = M.GaussianFocalLoss()
    assert torch.autograd.gradcheck(lambda p: loss(p, target.double(), weight.double()),
                                    (pred.double().requires_grad_(),))
    pos = dict(pos_inds=torch.tensor([0, 2]), pos_labels=torch.tensor([1, 3]))
    assert torch.autograd.gradcheck(lambda p: loss(p, target.double(), **pos),
                                    (pred.double().requires_grad_(),))
    _empty_is_zero_in_graph(loss, torch.zeros(0, 4), torch.zeros(0, 4))
    empty_pos = dict(pos_inds=torch.zeros(0, dtype=torch.long),
                     pos_labels=torch.zeros(0, dtype=torch.long))
    _empty_is_zero_in_graph(loss, torch.zeros(0, 4), torch.zeros(0, 4), **empty_pos)
    _half_matches_float32(loss, pred, target, weight)
    _half_matches_float32(loss, pred, target, **pos)
    _nan_gives_nan(loss, pred, target)
    _nan_gives_nan(loss, pred, target, **pos)


def test_gaussian_focal_bad_arguments():
    pred, target, _ = _heatmap(3, n=2, c=3)
    _refused(ValueError, 'alpha', lambda: M.GaussianFocalLoss(alpha=-1.0))
    _refused(ValueError, 'gamma', lambda: M.GaussianFocalLoss(gamma=NAN))
    _refused(TypeError, 'pos_weight', lambda: M.GaussianFocalLoss(pos_weight='1'))
    loss = M.GaussianFocalLoss()
    _refused(ValueError, 'pred', lambda: loss(pred + 1.0, target))
    _refused(ValueError, 'target', lambda: loss(pred, target + 1.0))
    _refused(ValueError, 'pos_labels', lambda: loss(pred, target, pos_inds=torch.tensor([0])))
    _refused(ValueError, 'pos_inds', lambda: loss(pred, target, pos_labels=torch.tensor([0])))
    _refused(ValueError, 'pos_labels', lambda: loss(pred, target, pos_inds=torch.tensor([0]),
                                                    pos_labels=torch.tensor([3])))
    _refused(ValueError, 'pos_inds', lambda: loss(pred, target, pos_inds=torch.tensor([2]),
                                                  pos_labels=torch.tensor([0])))
    _refused(TypeError, 'pos_inds', lambda: loss(pred, target, pos_inds=torch.tensor([0.0]),
                                                 pos_labels=torch.tensor([0])))
    _refused(ValueError, 'weight', lambda: loss(pred, target, torch.ones(2, 3),
                                                pos_inds=torch.tensor([0]),
                                                pos_labels=torch.tensor([0])))
    # mmdet's positional pos_inds in weight's place: refused, not read as a weight
    _refused(TypeError, 'weight', lambda: loss(pred, target, torch.tensor([0])))


# ========================================================== KnowledgeDistillationKLDivLoss
def _teacher(seed=0, n=6, c=5):
    gen = _gen(seed)
    return (torch.randn(n, c, generator=gen) * 2, torch.randn(n, c, generator=gen) * 2,
            0.5 + torch.rand(n, generator=gen))


@pytest.mark.parametrize('ctor', [{}, dict(T=1), dict(T=4, loss_weight=0.25)])
def test_kd_equals_mmdet(ctor):
    pred, soft, weight = _teacher()
    _compare(M.KnowledgeDistillationKLDivLoss(**ctor),
             mmdet_losses_mod.KnowledgeDistillationKLDivLoss(**ctor),
             lambda: (pred, soft), _standard_calls(weight))


def test_kd_is_the_class_mean_of_kl_div_and_detaches_the_teacher():
    pred, soft, _ = _teacher(1)
    c = pred.shape[1]
    ours = M.KnowledgeDistillationKLDivLoss(T=3.0)(pred, soft)
    torch.testing.assert_close(ours, M.KLDivLoss(temperature=3.0)(pred, soft) / c)
    # hand value: uniform student, teacher (1/3, 2/3), T = 1: KL / 2
    kl = (1 / 3) * math.log(2 / 3) + (2 / 3) * math.log(4 / 3)
    got = M.KnowledgeDistillationKLDivLoss(T=1)(torch.zeros(1, 2),
                                                torch.tensor([[1.0, 2.0]]).log())
    assert math.isclose(float(got), kl / 2, rel_tol=1e-5)
    teacher = soft.clone().requires_grad_(True)
    loss = M.KnowledgeDistillationKLDivLoss()(pred.requires_grad_(True), soft_label=teacher)
    loss.backward()
    assert teacher.grad is None and pred.grad is not None


def test_kd_gradcheck_empty_half_nan():
    pred, soft, weight = _teacher(2, n=3)
    loss = M.KnowledgeDistillationKLDivLoss(T=2.0)
    assert torch.autograd.gradcheck(lambda p: loss(p, soft.double(), weight.double()),
                                    (pred.double().requires_grad_(),))
    _empty_is_zero_in_graph(loss, torch.zeros(0, 5), torch.zeros(0, 5))
    _half_matches_float32(loss, pred, soft, weight)
    _nan_gives_nan(loss, pred, soft)
    pred = pred.clone()
    pred[0, 0] = -float('inf')  # exp(-inf) = 0 would hide it
    assert torch.isnan(loss(pred, soft))


def test_kd_bad_arguments():
    _refused(ValueError, 'T', lambda: M.KnowledgeDistillationKLDivLoss(T=0))
    _refused(ValueError, 'T', lambda: M.KnowledgeDistillationKLDivLoss(T=NAN))
    _refused(TypeError, 'T', lambda: M.KnowledgeDistillationKLDivLoss(T='10'))
    loss = M.KnowledgeDistillationKLDivLoss()
    _refused(ValueError, 'target', lambda: loss(torch.zeros(2, 3), torch.zeros(2, 4)))
    _refused(ValueError, 'pred', lambda: loss(torch.zeros(3), torch.zeros(3)))
    _refused(TypeError, 'target', lambda: loss(torch.zeros(2, 3), torch.zeros(2, 3).long()))


# ========================================================================== BoundedIoULoss
def _box_pairs(seed=0, n=8):
    gen = _gen(seed)
    xy = torch.rand(n, 2, generator=gen) * 20
    pred = torch.cat((xy, xy + 1 + torch.rand(n, 2, generator=gen) * 10), 1)
    target = pred + torch.randn(n, 4, generator=gen) * 2
    target = torch.cat((torch.minimum(target[:, :2], target[:, 2:]),
                        torch.maximum(target[:, :2], target[:, 2:])), 1)
    return pred, target, 0.5 + torch.rand(n, 4, generator=gen)


@pytest.mark.parametrize('ctor', [{}, dict(beta=0.5, eps=1e-2), dict(loss_weight=2.0)])
def test_bounded_iou_equals_mmdet(ctor):
    pred, target, weight = _box_pairs()
    _compare(M.BoundedIoULoss(**ctor), mmdet_losses_mod.BoundedIoULoss(**ctor),
             lambda: (pred, target), _standard_calls(weight))


def test_bounded_iou_hand_value():
    # dx = 1 on w_t = 10: 1 - 8/12 = 1/3; dy = 5 on h_t = 20: 1 - 10/30 = 2/3; w equal: 0;
    # h 10 against 20: 1 - 1/2; all >= beta = 0.2: l - 0.1
    got = M.BoundedIoULoss(eps=0.0, reduction='none')(torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
                                                     torch.tensor([[1.0, 0.0, 11.0, 20.0]]))
    torch.testing.assert_close(got, torch.tensor([[1 / 3 - 0.1, 2 / 3 - 0.1, 0.0, 0.4]]))
    # a small offset is in the quadratic part: dx = 0.1 on w_t = 10: l = 0.4/10.4 < 0.2
    l = 1 - 9.8 / 10.2
    got = M.BoundedIoULoss(eps=0.0, reduction='none')(torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
                                                     torch.tensor([[0.1, 0.0, 10.1, 10.0]]))
    torch.testing.assert_close(got, torch.tensor([[0.5 * l * l / 0.2, 0.0, 0.0, 0.0]]))


def test_bounded_iou_gradcheck_empty_half_nan():
    pred, target, weight = _box_pairs(2, n=3)
    loss = M.BoundedIoULoss()
    assert torch.autograd.gradcheck(lambda p: loss(p, target.double(), weight.double()),
                                    (pred.double().requires_grad_(),))
    _empty_is_zero_in_graph(loss, torch.zeros(0, 4), torch.zeros(0, 4))
    _half_matches_float32(loss, pred, target, weight)
    _nan_gives_nan(loss, pred, target)
    pred = pred.clone()
    pred[0, 2] = float('inf')  # an infinite side alone leaves its ratio term finite
    out = loss(pred, target, reduction_override='none')
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1:]).all()


def test_bounded_iou_bad_arguments():
    _refused(ValueError, 'beta', lambda: M.BoundedIoULoss(beta=0.0))
    _refused(ValueError, 'eps', lambda: M.BoundedIoULoss(eps=-1e-3))
    loss = M.BoundedIoULoss()
    _refused(ValueError, 'pred', lambda: loss(torch.zeros(2, 5), torch.zeros(2, 5)))
    _refused(ValueError, 'target', lambda: loss(torch.zeros(2, 4), torch.zeros(3, 4)))
    _refused(ValueError, 'weight', lambda: loss(torch.zeros(3, 4), torch.zeros(3, 4),
                                                torch.ones(3)))


# ================================================================ L2Loss and MarginL2Loss
def _similarities(seed=0, n=6, m=5):
    gen = _gen(seed)
    pred = torch.rand(n, m, generator=gen) * 1.2 - 0.1   # some outside [0, 1]: the clamp
    target = (torch.rand(n, m, generator=gen) > 0.7).float()
    weight = (torch.rand(n, m, generator=gen) > 0.1).float() * (0.5 + torch.rand(n, m,
                                                                                  generator=gen))
    return pred, target, weight


DETERMINISTIC_CTORS = [{}, dict(pos_margin=0.1, neg_margin=0.2),
                       dict(neg_pos_ub=1, hard_mining=True, neg_margin=0.1),
                       dict(neg_pos_ub=2, hard_mining=True, loss_weight=2.0)]


@pytest.mark.parametrize('name', ['L2Loss', 'MarginL2Loss'])
@pytest.mark.parametrize('ctor', DETERMINISTIC_CTORS)
def test_tracking_l2_equals_mmdet(name, ctor):
    pred, target, weight = _similarities()
    calls = [dict(reduction_override=r) for r in ('mean', 'none')]
    calls += [dict(weight=weight, reduction_override=r) for r in ('mean', 'none')]
    _compare(getattr(M, name)(**ctor), getattr(mmdet_losses_mod, name)(**ctor),
             lambda: (pred, target), calls, clone_inputs=True)


def test_tracking_l2_leaves_inputs_unmodified_and_hand_value():
    pred = torch.tensor([[0.9, 0.3, 1.4]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    before = pred.clone(), target.clone()
    got = M.MarginL2Loss(neg_pos_ub=1, neg_margin=0.1, hard_mining=True)(pred, target)
    # positive (0.9 - 1)^2 = 0.01; negatives clamp(0.2)^2 = 0.04, clamp(1.3)^2 = 1: the
    # hardest one kept; mean over the 2 kept elements
    assert math.isclose(float(got), (0.01 + 1.0) / 2, rel_tol=1e-6)
    assert torch.equal(pred, before[0]) and torch.equal(target, before[1])
    # a given avg_factor is used (mmdet's ignores it), 'sum' sums (mmdet's raises)
    assert math.isclose(float(M.L2Loss()(pred, target, avg_factor=2.0)),
                        (0.01 + 0.09 + 1.0) / 2, rel_tol=1e-6)
    assert math.isclose(float(M.L2Loss(reduction='sum')(pred, target)), 1.1, rel_tol=1e-6)


def test_tracking_l2_random_negatives():
    """Random mining keeps exactly neg_pos_ub per positive, each negative as often."""
    pred = torch.full((1, 9), 0.5)
    target = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0, 0]])
    counts = torch.zeros(9)
    torch.manual_seed(0)
    for _ in range(400):
        none = F.margin_l2_loss(pred, target, reduction='none', neg_pos_ub=2)
        kept = none[0] > 0
        assert int(kept[1:].sum()) == 2 and bool(kept[0])
        counts += kept.float()
        # 'mean' divides by the 3 kept elements
    assert math.isclose(float(M.L2Loss(neg_pos_ub=2)(pred, target)), 0.25, rel_tol=1e-6)
    share = counts[1:] / 400   # 2 of 8 negatives: 1/4 each
    assert bool((share - 0.25).abs().max() < 0.08), share
    gen = torch.Generator().manual_seed(3)
    a = F.margin_l2_loss(pred, target, reduction='none', neg_pos_ub=2, generator=gen)
    b = F.margin_l2_loss(pred, target, reduction='none', neg_pos_ub=2,
                         generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_tracking_l2_gradcheck_empty_half_nan():
    gen = _gen(4)
    pred = 0.05 + 0.9 * torch.rand(3, 4, generator=gen)
    target = (torch.rand(3, 4, generator=gen) > 0.5).float()
    for loss in (M.L2Loss(), M.MarginL2Loss(neg_pos_ub=1, hard_mining=True, neg_margin=0.01)):
        assert torch.autograd.gradcheck(lambda p: loss(p, target.double()),
                                        (pred.double().requires_grad_(),))
        _empty_is_zero_in_graph(loss, torch.zeros(0, 4), torch.zeros(0, 4))
        _half_matches_float32(loss, pred, target)
        _nan_gives_nan(loss, pred, target)
        inf = pred.clone()
        inf[0, 0] = float('inf')  # the clamp would make it 1
        assert not torch.isfinite(loss(inf, target))


def test_tracking_l2_bad_arguments():
    _refused(TypeError, 'hard_mining', lambda: M.L2Loss(hard_mining=1))
    _refused(ValueError, 'neg_pos_ub', lambda: M.L2Loss(neg_pos_ub=1.5))
    _refused(TypeError, 'neg_pos_ub', lambda: M.MarginL2Loss(neg_pos_ub='3'))
    _refused(ValueError, 'pos_margin', lambda: M.MarginL2Loss(pos_margin=NAN))
    _refused(ValueError, 'target', lambda: M.L2Loss()(torch.zeros(2, 3), torch.zeros(2, 4)))
    _refused(ValueError, 'weight', lambda: M.L2Loss()(torch.zeros(2, 3), torch.zeros(2, 3),
                                                       torch.ones(4)))


# ================================================================== registry and config
@pytest.mark.parametrize('name', ['DiceLoss', 'GaussianFocalLoss',
                                  'KnowledgeDistillationKLDivLoss', 'BoundedIoULoss', 'L2Loss',
                                  'MarginL2Loss'])
def test_built_through_mmdets_registry_with_mmdets_arguments(name):
    from mmdet.registry import MODELS as MMDET_MODELS
    import inspect
    theirs = inspect.signature(getattr(mmdet_losses_mod, name).__init__).parameters
    ours = inspect.signature(getattr(M, name).__init__).parameters
    assert list(theirs) == list(ours)
    assert all(theirs[k].default == ours[k].default for k in theirs if k != 'self')
    assert type(MMDET_MODELS.build(dict(type=f'mmdet_losses.{name}'))) is getattr(M, name)
