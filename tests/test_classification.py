"""Classification losses against their papers' formulas written plainly here, PyTorch built-ins
and hand-derived values; plus gradcheck, empty inputs, half precision and bad input for every
class. mmdet as the reference: test_classification_mmdet.py; the fused focal kernel:
test_classification_focal.py."""
import math

import pytest
import torch
import torch.nn.functional as TF
from _helpers import HALF_DTYPES, assert_finite, assert_zero_in_graph, double_leaf

import mmdet_losses
from mmdet_losses import functional as F
from mmdet_losses.registry import MODELS

N, C = 6, 4


def _data(kind, n=N, c=C, seed=0, dtype=torch.float32):
    """(pred, target, per-sample weight) for a kind of classification problem."""
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(n, c, generator=gen) * 2).to(dtype)
    weight = torch.rand(n, generator=gen).to(dtype)
    if kind == 'index':  # labels in [0, C - 1]
        target = torch.randint(0, c, (n,), generator=gen)
    elif kind == 'index_bg':  # labels in [0, C], C = background
        target = torch.randint(0, c + 1, (n,), generator=gen)
    elif kind == 'soft':  # soft / IoU-like targets with zeros
        target = torch.rand(n, c, generator=gen) * (torch.rand(n, c, generator=gen) > 0.6)
    elif kind == 'qfl':
        target = (torch.randint(0, c + 1, (n,), generator=gen), torch.rand(n, generator=gen))
    elif kind == 'dfl':
        target = torch.rand(n, generator=gen) * (c - 1)
    elif kind == 'binary':
        pred = pred[:, 0].contiguous()
        target = torch.randint(0, 2, (n,), generator=gen)
    elif kind == 'kl':
        target = (torch.randn(n, c, generator=gen) * 2).to(dtype)
    else:
        raise KeyError(kind)
    return pred, target, weight


# (class name, function, params, data kind)
CASES = [
    ('CrossEntropyLoss', F.cross_entropy_loss, dict(label_smoothing=0.1), 'index'),
    ('BinaryCrossEntropyLoss', F.binary_cross_entropy_loss, {}, 'index_bg'),
    ('BalancedCrossEntropyLoss', F.balanced_cross_entropy_loss, dict(beta=0.9), 'index'),
    ('FocalLoss', F.focal_loss, dict(gamma=1.5, alpha=0.25), 'index_bg'),
    ('SoftmaxFocalLoss', F.softmax_focal_loss, dict(gamma=2.0, alpha=0.5), 'index'),
    ('VarifocalLoss', F.varifocal_loss, dict(alpha=0.75, gamma=2.0), 'soft'),
    ('QualityFocalLoss', F.quality_focal_loss, dict(beta=2.0), 'qfl'),
    ('DistributionFocalLoss', F.distribution_focal_loss, {}, 'dfl'),
    ('LogisticLoss', F.logistic_loss, {}, 'binary'),
    ('HingeLoss', F.hinge_loss, dict(margin=1.0, multiclass='weston_watkins'), 'index'),
    ('ExponentialLoss', F.exponential_loss, {}, 'binary'),
    ('KLDivLoss', F.kl_div_loss, dict(temperature=2.0), 'kl'),
    ('ZeroOneLoss', F.zero_one_loss, {}, 'index'),
]
IDS = [c[0] for c in CASES]
DIFFERENTIABLE = [c for c in CASES if c[0] != 'ZeroOneLoss']


def _module(name, params, **kwargs):
    return getattr(mmdet_losses, name)(**params, **kwargs)


# ------------------------------------------------------------------ every class, same checks

@pytest.mark.parametrize('name,fn,params,kind', CASES, ids=IDS)
def test_module_is_loss_weight_times_functional(name, fn, params, kind):
    pred, target, weight = _data(kind)
    for reduction in ('none', 'mean', 'sum'):
        module = _module(name, params, reduction=reduction, loss_weight=2.5)
        torch.testing.assert_close(module(pred, target, weight),
                                   2.5 * fn(pred, target, weight, reduction=reduction, **params))
    module = _module(name, params, loss_weight=0.5)
    torch.testing.assert_close(module(pred, target, weight, avg_factor=3.0),
                               0.5 * fn(pred, target, weight, avg_factor=3.0, **params))


@pytest.mark.parametrize('name,fn,params,kind', CASES, ids=IDS)
def test_registered_by_scoped_name(name, fn, params, kind):
    module = MODELS.build(dict(type=f'mmdet_losses.{name}', **params))
    assert type(module) is getattr(mmdet_losses, name)
    pred, target, weight = _data(kind)
    torch.testing.assert_close(module(pred, target), fn(pred, target, **params))


@pytest.mark.parametrize('name,fn,params,kind', DIFFERENTIABLE, ids=[c[0] for c in DIFFERENTIABLE])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_gradcheck_float64(name, fn, params, kind, reduction):
    pred, target, weight = _data(kind, n=3, c=3, seed=1, dtype=torch.float64)
    if kind == 'dfl':
        target = torch.tensor([0.3, 1.6, 1.2], dtype=torch.float64)  # away from the integers
    assert torch.autograd.gradcheck(
        lambda p: fn(p, target, weight, reduction=reduction, **params), (double_leaf(pred),))


@pytest.mark.parametrize('name,fn,params,kind', DIFFERENTIABLE, ids=[c[0] for c in DIFFERENTIABLE])
@pytest.mark.parametrize('reduction,avg_factor', [('mean', None), ('sum', None), ('mean', 4.0)])
def test_empty_input_is_a_zero_in_the_graph(name, fn, params, kind, reduction, avg_factor):
    pred, target, weight = _data(kind, n=0)
    leaf = pred.clone().requires_grad_(True)
    module = _module(name, params, reduction=reduction)
    assert_zero_in_graph(module(leaf, target, weight, avg_factor=avg_factor), leaf)


@pytest.mark.parametrize('name,fn,params,kind', DIFFERENTIABLE, ids=[c[0] for c in DIFFERENTIABLE])
def test_all_zero_weight_is_a_zero_in_the_graph(name, fn, params, kind):
    pred, target, weight = _data(kind)
    leaf = pred.clone().requires_grad_(True)
    assert_zero_in_graph(fn(leaf, target, torch.zeros_like(weight), reduction='sum', **params),
                         leaf)


@pytest.mark.parametrize('name,fn,params,kind', CASES, ids=IDS)
def test_empty_input_none_reduction_is_empty(name, fn, params, kind):
    pred, target, _ = _data(kind, n=0)
    assert fn(pred, target, reduction='none', **params).numel() == 0


@pytest.mark.parametrize('name,fn,params,kind', CASES, ids=IDS)
@pytest.mark.parametrize('dtype', HALF_DTYPES)
def test_half_precision_computed_in_float32(name, fn, params, kind, dtype):
    pred, target, weight = _data(kind)
    half = pred.to(dtype)
    half_target = target.to(dtype) if kind == 'kl' else target
    for reduction in ('none', 'mean', 'sum'):
        out = fn(half, half_target, weight, reduction=reduction, **params)
        assert out.dtype == dtype
        ref = fn(half.float(), half_target.float() if kind == 'kl' else target, weight,
                 reduction=reduction, **params)
        torch.testing.assert_close(out, ref.to(dtype))
    if name == 'ZeroOneLoss':
        return
    leaf = half.clone().requires_grad_(True)
    fn(leaf, half_target, weight, **params).backward()
    assert leaf.grad.dtype == dtype
    assert_finite(leaf.grad)


@pytest.mark.parametrize('name,fn,params,kind', DIFFERENTIABLE, ids=[c[0] for c in DIFFERENTIABLE])
def test_saturated_logits_finite_value_and_gradient(name, fn, params, kind):
    # exp(-y f) at y f = -100 is 2.7e43: beyond float32, so that loss is checked in float64
    dtype = torch.float64 if name == 'ExponentialLoss' else torch.float32
    pred, target, weight = _data(kind, n=8, dtype=dtype)
    leaf = (torch.sign(pred) * 100).requires_grad_(True)
    if kind == 'kl':
        target = torch.sign(target) * 100
    for reduction in ('none', 'mean'):
        out = fn(leaf, target, weight, reduction=reduction, **params)
        grad, = torch.autograd.grad(out.sum(), leaf)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()


# ------------------------------------------------------------------------- cross-entropy

def test_cross_entropy_equals_torch_where_their_conventions_meet():
    pred, target, _ = _data('index', n=8, c=5)
    target[[1, 4]] = -100
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, reduction='none'),
                               TF.cross_entropy(pred, target, reduction='none'))
    # avg_non_ignore: the mean over non-ignored samples, torch's own 'mean'
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, avg_non_ignore=True),
                               TF.cross_entropy(pred, target))
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, label_smoothing=0.2,
                                                    avg_non_ignore=True),
                               TF.cross_entropy(pred, target, label_smoothing=0.2))
    probs = torch.softmax(torch.randn(8, 5), dim=1)
    torch.testing.assert_close(F.cross_entropy_loss(pred, probs),
                               TF.cross_entropy(pred, probs))


def test_cross_entropy_class_weight_and_ignore_by_hand():
    pred = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0], [0.0, 0.0, 0.0]],
                        dtype=torch.float64)
    target = torch.tensor([0, 2, 7])
    class_weight = [0.5, 1.0, 3.0]
    nll = -torch.log_softmax(pred, 1)
    per_sample = torch.stack([0.5 * nll[0, 0], 3.0 * nll[1, 2], nll.new_zeros(())])
    out = F.cross_entropy_loss(pred, target, class_weight=class_weight, ignore_index=7,
                               reduction='none')
    torch.testing.assert_close(out, per_sample)
    # mmdet's mean: over all 3 samples (ignored included) unless avg_non_ignore (2 samples)
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, class_weight=class_weight,
                                                    ignore_index=7), per_sample.sum() / 3)
    torch.testing.assert_close(
        F.cross_entropy_loss(pred, target, class_weight=class_weight, ignore_index=7,
                             avg_non_ignore=True), per_sample.sum() / 2)


def test_cross_entropy_spatial_logits():
    pred = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, reduction='none'),
                               TF.cross_entropy(pred, target, reduction='none'))


def _bce_formula(x, t, pos_weight=1.0):
    """-(pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), in float64."""
    x, t = x.double(), t.double()
    p = torch.sigmoid(x)
    return -(pos_weight * t * torch.log(p) + (1 - t) * torch.log(1 - p))


def test_binary_cross_entropy_index_targets_expand_to_one_hot():
    pred = torch.randn(5, 3)
    labels = torch.tensor([0, 3, 2, -100, 1])  # 3 is background, -100 ignored
    one_hot = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]])
    valid = torch.tensor([1.0, 1, 1, 0, 1]).unsqueeze(1)
    expect = _bce_formula(pred, one_hot) * valid
    out = F.binary_cross_entropy_loss(pred, labels, reduction='none')
    torch.testing.assert_close(out, expect.float())
    torch.testing.assert_close(F.binary_cross_entropy_loss(pred, labels),
                               (expect.sum() / 15).float())
    torch.testing.assert_close(F.binary_cross_entropy_loss(pred, labels, avg_non_ignore=True),
                               (expect.sum() / 12).float())
    weight = torch.rand(5)
    torch.testing.assert_close(F.binary_cross_entropy_loss(pred, labels, weight, 'sum'),
                               (expect * weight[:, None]).sum().float())
    # CrossEntropyLoss(use_sigmoid=True) is the same loss
    torch.testing.assert_close(mmdet_losses.CrossEntropyLoss(use_sigmoid=True)(pred, labels),
                               F.binary_cross_entropy_loss(pred, labels))


def test_binary_cross_entropy_pos_and_class_weight_by_hand():
    pred, target = torch.randn(4, 3), torch.rand(4, 3)
    pos_weight, class_weight = [2.0, 0.5, 1.0], [1.0, 3.0, 0.2]
    expect = _bce_formula(pred, target, torch.tensor(pos_weight, dtype=torch.float64))
    expect = expect * torch.tensor(class_weight, dtype=torch.float64)
    out = F.binary_cross_entropy_loss(pred, target, reduction='none', pos_weight=pos_weight,
                                      class_weight=class_weight)
    torch.testing.assert_close(out, expect.float())
    torch.testing.assert_close(F.binary_cross_entropy_loss(pred[:, 0], target[:, 0],
                                                           reduction='none', pos_weight=3.0),
                               _bce_formula(pred[:, 0], target[:, 0], 3.0).float())


def test_balanced_cross_entropy_weights_by_hand():
    pred = torch.randn(6, 3, dtype=torch.float64)
    target = torch.tensor([0, 0, 0, 1, 1, 2])
    nll = -torch.log_softmax(pred, 1).gather(1, target[:, None]).squeeze(1)

    def expect(w):
        w = torch.tensor(w, dtype=torch.float64)
        return w[target] * nll

    counts = [10.0, 5.0, 1.0]  # w_c = (1/n_c) * C / sum_k 1/n_k
    inv = [1 / n for n in counts]
    w = [v * 3 / sum(inv) for v in inv]
    torch.testing.assert_close(
        F.balanced_cross_entropy_loss(pred, target, reduction='none', class_counts=counts),
        expect(w))
    beta = 0.99  # effective number: (1 - beta) / (1 - beta^n), normalised to sum to C
    eff = [(1 - beta) / (1 - beta ** n) for n in counts]
    w = [v * 3 / sum(eff) for v in eff]
    torch.testing.assert_close(F.balanced_cross_entropy_loss(
        pred, target, reduction='none', class_counts=counts, beta=beta), expect(w))
    # from the batch: counts 3, 2, 1
    inv = [1 / 3, 1 / 2, 1.0]
    w = [v * 3 / sum(inv) for v in inv]
    torch.testing.assert_close(F.balanced_cross_entropy_loss(pred, target, reduction='none'),
                               expect(w))
    # a class absent from the batch takes no share of the normalisation
    pred4 = torch.cat([pred, torch.zeros(6, 1, dtype=torch.float64)], 1)
    nll4 = -torch.log_softmax(pred4, 1).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(F.balanced_cross_entropy_loss(pred4, target, reduction='none'),
                               torch.tensor(w, dtype=torch.float64)[target] * nll4)


def test_balanced_cross_entropy_sigmoid_by_hand():
    pred = torch.randn(4, 2, dtype=torch.float64)
    target = torch.tensor([[1.0, 0], [0, 0], [0, 1], [0, 0]], dtype=torch.float64)
    f = 2 / 8  # the fraction of positives
    p = torch.sigmoid(pred)
    expect = -(1 - f) * target * torch.log(p) - f * (1 - target) * torch.log(1 - p)
    out = F.balanced_cross_entropy_loss(pred, target, reduction='none', use_sigmoid=True)
    torch.testing.assert_close(out, expect)
    labels = torch.tensor([0, 2, 1, 2])  # the same targets as indices, 2 = background
    torch.testing.assert_close(F.balanced_cross_entropy_loss(pred, labels, reduction='none',
                                                             use_sigmoid=True), expect)


def test_kl_div_equals_batchmean_and_scales_by_temperature():
    pred, teacher, _ = _data('kl', n=5, c=7)
    torch.testing.assert_close(
        F.kl_div_loss(pred, teacher),
        TF.kl_div(torch.log_softmax(pred, 1), torch.softmax(teacher, 1), reduction='batchmean'))
    T = 3.0
    q = torch.softmax(teacher.double() / T, 1)
    expect = (q * (torch.log(q) - torch.log_softmax(pred.double() / T, 1))).sum(1) * T * T
    torch.testing.assert_close(F.kl_div_loss(pred, teacher, reduction='none', temperature=T),
                               expect.float())
    teacher_leaf = teacher.clone().requires_grad_(True)
    student = pred.clone().requires_grad_(True)
    F.kl_div_loss(student, teacher_leaf, temperature=T).backward()
    assert teacher_leaf.grad is None  # the teacher is detached
    # d/dz of T^2 KL: T (p - q) per sample, / N for the mean
    p = torch.softmax(pred.double() / T, 1)
    torch.testing.assert_close(student.grad, (T * (p - q) / 5).float())


# ------------------------------------------------------------------------- focal family

def _torchvision_focal(x, t, gamma, alpha):
    """torchvision.ops.sigmoid_focal_loss's element-wise formula (reduction='none')."""
    p = torch.sigmoid(x)
    ce = TF.binary_cross_entropy_with_logits(x, t, reduction='none')
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (0.0, 0.5), (1.5, -1.0), (3.0, 0.9)])
@pytest.mark.parametrize('soft', [False, True])
def test_focal_dense_targets_match_torchvision_formula(gamma, alpha, soft):
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(7, 5, generator=gen) * 3).double()
    t = torch.rand(7, 5, generator=gen).double()
    t = t if soft else (t > 0.7).double()
    leaf, ref_leaf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = F.focal_loss(leaf, t, reduction='none', gamma=gamma, alpha=alpha)
    ref = _torchvision_focal(ref_leaf, t, gamma, alpha)
    torch.testing.assert_close(out, ref)
    grad_out = torch.rand(7, 5, generator=gen).double()
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(leaf.grad, ref_leaf.grad)


def test_focal_index_targets_equal_one_hot_targets_without_kernel(monkeypatch):
    from mmdet_losses.ops import focal_kernel
    monkeypatch.setattr(focal_kernel, '_ext', None)  # the pure-PyTorch path
    x = torch.randn(9, 4, dtype=torch.float64) * 3
    labels = torch.tensor([0, 4, 3, 4, 1, 2, 4, 0, 3])
    one_hot = TF.one_hot(labels, 5)[:, :4].double()
    for gamma, alpha in [(2.0, 0.25), (0.5, -1.0), (0.0, 0.25)]:
        leaf, ref_leaf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out = F.focal_loss(leaf, labels, reduction='none', gamma=gamma, alpha=alpha)
        ref = _torchvision_focal(ref_leaf, one_hot, gamma, alpha)
        torch.testing.assert_close(out, ref)
        out.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(leaf.grad, ref_leaf.grad)


def test_focal_loss_by_hand():
    # logit 0 labelled positive: alpha (1/2)^2 log 2; logit 0 negative: (1 - alpha)(1/2)^2 log 2
    pred = torch.tensor([[0.0, 0.0]])
    out = F.focal_loss(pred, torch.tensor([1]), reduction='none')
    torch.testing.assert_close(out, torch.tensor([[0.75 * 0.25 * math.log(2),
                                                   0.25 * 0.25 * math.log(2)]]))


@pytest.mark.parametrize('use_kernel', [True, False])
@pytest.mark.parametrize('gamma', [0.0, 0.25, 0.5, 2.0])
@pytest.mark.parametrize('alpha', [0.25, -1.0])
def test_focal_saturated_logits_finite_value_and_gradient(monkeypatch, use_kernel, gamma, alpha):
    from mmdet_losses.ops import focal_kernel
    if not use_kernel:
        monkeypatch.setattr(focal_kernel, '_ext', None)
    elif not focal_kernel.available():
        pytest.skip('the focal kernel is not built')
    x = torch.tensor([[100.0, -100.0], [-100.0, 100.0], [100.0, 100.0], [-100.0, -100.0]])
    labels = torch.tensor([0, 0, 2, 1])
    # exact values: the right-class terms are 0 (up to exp(-100)), the wrong ones 100 * factor
    a_pos, a_neg = (1.0, 1.0) if alpha < 0 else (alpha, 1 - alpha)
    expect = torch.tensor([[0.0, 0.0], [a_pos * 100, a_neg * 100], [a_neg * 100, a_neg * 100],
                           [0.0, a_pos * 100]])
    for target in (labels, TF.one_hot(labels, 3)[:, :2].float()):
        leaf = x.clone().requires_grad_(True)
        out = F.focal_loss(leaf, target, reduction='none', gamma=gamma, alpha=alpha)
        torch.testing.assert_close(out, expect, atol=1e-4, rtol=1e-5)
        out.sum().backward()
        assert_finite(leaf.grad)
        # d/dx: right-class terms ~0, wrong positive -alpha, wrong negative (1 - alpha)
        grad = torch.tensor([[0.0, 0.0], [-a_pos, a_neg], [a_neg, a_neg], [0.0, -a_pos]])
        torch.testing.assert_close(leaf.grad, grad, atol=1e-6, rtol=1e-5)


def test_focal_activated_takes_probabilities():
    x = torch.randn(6, 3, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    probs = torch.sigmoid(x)
    for target in (labels, TF.one_hot(labels, 4)[:, :3].double()):
        torch.testing.assert_close(
            F.focal_loss(probs, target, reduction='none', activated=True),
            F.focal_loss(x, target, reduction='none'))
    # saturated probabilities, gamma < 1: finite
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    out = F.focal_loss(probs, torch.tensor([0, 2]), gamma=0.5, activated=True, reduction='sum')
    out.backward()
    assert_finite(out, probs.grad)
    # log clamped at -100 as torch's binary_cross_entropy: (1 - alpha) * 1 * 100 for p = 1
    torch.testing.assert_close(out, torch.tensor(75.0, dtype=torch.float64))


def test_focal_weight_shapes_as_mmdet():
    pred = torch.randn(5, 3)
    labels = torch.tensor([0, 3, 1, 2, 3])
    elementwise = F.focal_loss(pred, labels, reduction='none')
    per_anchor = torch.rand(5)
    torch.testing.assert_close(F.focal_loss(pred, labels, per_anchor, 'sum'),
                               (elementwise * per_anchor[:, None]).sum())
    per_element = torch.rand(5, 3)
    torch.testing.assert_close(F.focal_loss(pred, labels, per_element.reshape(-1), 'sum'),
                               (elementwise * per_element).sum())
    torch.testing.assert_close(F.focal_loss(pred, labels, per_element, avg_factor=2.0),
                               (elementwise * per_element).sum() / (2.0 + 1.1920929e-07))


def _softmax_focal_formula(x, y, gamma, alpha=None):
    p = torch.softmax(x.double(), 1).gather(1, y[:, None]).squeeze(1)
    loss = -(1 - p) ** gamma * torch.log(p)
    if alpha is not None:
        loss = loss * (torch.tensor(alpha, dtype=torch.float64)[y] if isinstance(alpha, list)
                       else alpha)
    return loss


def test_softmax_focal_matches_formula_and_cross_entropy():
    pred, target, _ = _data('index', n=8, c=5)
    for gamma, alpha in [(2.0, None), (0.5, 0.25), (1.0, [0.1, 0.2, 0.3, 0.4, 0.5])]:
        torch.testing.assert_close(
            F.softmax_focal_loss(pred.double(), target, reduction='none', gamma=gamma,
                                 alpha=alpha),
            _softmax_focal_formula(pred, target, gamma, alpha))
    target[2] = -100
    torch.testing.assert_close(F.softmax_focal_loss(pred, target, gamma=0.0),
                               F.cross_entropy_loss(pred, target))


def test_softmax_focal_saturated_gamma_below_one_is_finite():
    pred = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]], requires_grad=True)
    out = F.softmax_focal_loss(pred, torch.tensor([0, 0]), gamma=0.5, reduction='none')
    out.sum().backward()
    assert_finite(out, pred.grad)
    torch.testing.assert_close(out.detach(), torch.tensor([0.0, 200.0]))
    torch.testing.assert_close(pred.grad, torch.tensor([[0.0, 0.0, 0.0], [-1.0, 1.0, 0.0]]))


def _bce(x, t):
    return TF.binary_cross_entropy_with_logits(x, t, reduction='none')


def test_varifocal_matches_paper_formula():
    pred, target, _ = _data('soft', n=8, c=5, dtype=torch.float64)
    p = torch.sigmoid(pred)
    for iou_weighted in (True, False):
        pos_factor = target if iou_weighted else torch.ones_like(target)
        expect = torch.where(target > 0, pos_factor * _bce(pred, target),
                             0.75 * p ** 2 * _bce(pred, torch.zeros_like(pred)))
        torch.testing.assert_close(F.varifocal_loss(pred, target, reduction='none',
                                                    iou_weighted=iou_weighted), expect)


def test_quality_focal_matches_paper_formula_for_both_target_forms():
    pred = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 4, 3, 1, 4, 3])
    scores = torch.rand(6, dtype=torch.float64)
    dense = torch.zeros(6, 4, dtype=torch.float64)
    dense[[0, 2, 3, 5], labels[[0, 2, 3, 5]]] = scores[[0, 2, 3, 5]]
    p = torch.sigmoid(pred)
    expect = (_bce(pred, dense) * (dense - p).abs() ** 2.0).sum(1)
    torch.testing.assert_close(F.quality_focal_loss(pred, (labels, scores), reduction='none'),
                               expect)
    torch.testing.assert_close(F.quality_focal_loss(pred, dense, reduction='none'), expect)
    torch.testing.assert_close(
        F.quality_focal_loss(p, (labels, scores), reduction='none', activated=True), expect)


def test_distribution_focal_matches_paper_formula():
    pred = torch.randn(5, 8, dtype=torch.float64)
    target = torch.tensor([0.0, 2.25, 6.5, 6.999, 7.0], dtype=torch.float64)
    log_s = torch.log_softmax(pred, 1)
    expect = []
    for n, y in enumerate(target.tolist()):
        left = min(int(math.floor(y)), 6)
        expect.append(-(left + 1 - y) * log_s[n, left] - (y - left) * log_s[n, left + 1])
    torch.testing.assert_close(F.distribution_focal_loss(pred, target, reduction='none'),
                               torch.stack(expect))


# --------------------------------------------------------------- margin losses and 0-1 loss

def test_binary_label_conventions_agree():
    pred = torch.randn(10)
    y01 = torch.randint(0, 2, (10,))
    ypm = y01 * 2 - 1
    for fn in (F.logistic_loss, F.exponential_loss, F.hinge_loss, F.zero_one_loss):
        torch.testing.assert_close(fn(pred, y01, reduction='none'),
                                   fn(pred, ypm, reduction='none'))


def test_margin_losses_by_formula():
    f = torch.tensor([-3.0, -0.5, 0.0, 0.5, 2.0, 100.0, -100.0], dtype=torch.float64)
    y = torch.tensor([1, -1, 1, 1, -1, 1, -1])
    m = y.double() * f
    torch.testing.assert_close(F.logistic_loss(f, y, reduction='none'),
                               torch.log1p(torch.exp(-m)))
    torch.testing.assert_close(F.exponential_loss(f, y, reduction='none'), torch.exp(-m))
    torch.testing.assert_close(F.hinge_loss(f, y, reduction='none', margin=0.7),
                               torch.clamp(0.7 - m, min=0))
    torch.testing.assert_close(F.hinge_loss(f, y, reduction='none', squared=True),
                               torch.clamp(1 - m, min=0) ** 2)
    leaf = f.clone().requires_grad_(True)
    F.logistic_loss(leaf, y, reduction='sum').backward()  # -y sigmoid(-m)
    torch.testing.assert_close(leaf.grad, -y.double() * torch.sigmoid(-m))


@pytest.mark.parametrize('squared', [False, True])
def test_multiclass_hinge_by_formula(squared):
    pred = torch.randn(7, 4, dtype=torch.float64)
    target = torch.randint(0, 4, (7,))
    power = 2 if squared else 1
    cs, ww = [], []
    for n in range(7):
        y = int(target[n])
        others = [float(pred[n, j]) for j in range(4) if j != y]
        cs.append(max(0.0, 0.6 + max(others) - float(pred[n, y])) ** power)
        ww.append(sum(max(0.0, 0.6 - float(pred[n, y]) + o) ** power for o in others))
    for mode, expect in (('crammer_singer', cs), ('weston_watkins', ww)):
        torch.testing.assert_close(
            F.hinge_loss(pred, target, reduction='none', margin=0.6, squared=squared,
                         multiclass=mode), torch.tensor(expect, dtype=torch.float64))


def test_zero_one_is_the_error_rate_without_gradient():
    pred = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 2.0]],
                        requires_grad=True)
    target = torch.tensor([0, 2, 2, 0])
    out = mmdet_losses.ZeroOneLoss()(pred, target)
    assert float(out) == 0.5 and not out.requires_grad
    torch.testing.assert_close(F.zero_one_loss(pred, target, reduction='none'),
                               torch.tensor([0.0, 1.0, 0.0, 1.0]))
    binary = F.zero_one_loss(torch.tensor([0.3, -0.2, 0.0, -1.0]), torch.tensor([1, 1, 0, 0]),
                             reduction='sum')
    assert float(binary) == 1.0


# ------------------------------------------------------------------ mmdet drop-in, bad input

def test_use_sigmoid_as_mmdet_heads_read_it():
    for name in ('FocalLoss', 'VarifocalLoss', 'QualityFocalLoss', 'BinaryCrossEntropyLoss'):
        assert getattr(mmdet_losses, name)(use_sigmoid=True).use_sigmoid is True
        with pytest.raises(ValueError, match=r'use_sigmoid must be True: .* got False'):
            getattr(mmdet_losses, name)(use_sigmoid=False)
    assert mmdet_losses.CrossEntropyLoss().use_sigmoid is False
    assert mmdet_losses.CrossEntropyLoss(use_sigmoid=True).use_sigmoid is True


def test_cross_entropy_call_may_override_ignore_index():
    pred, target, _ = _data('index')
    target[0] = 2
    module = mmdet_losses.CrossEntropyLoss(reduction='none')
    out = module(pred, target, ignore_index=2)
    torch.testing.assert_close(out, TF.cross_entropy(pred, target, ignore_index=2,
                                                     reduction='none'))


@pytest.mark.parametrize('call,error,match', [
    (lambda: F.focal_loss(torch.zeros(3, 4), torch.tensor([0, 5, 1])), ValueError,
     r'target must hold class indices in \[0, 4\], got 5'),
    (lambda: F.focal_loss(torch.zeros(3, 4), torch.tensor([0, -1, 1])), ValueError,
     r'target must hold class indices in \[0, 4\], got -1'),
    (lambda: F.focal_loss(torch.zeros(3, 4), torch.zeros(3, 5)), ValueError,
     r'target must have the shape of pred \(3, 4\) .* or \(3,\) \(class indices\), got '
     r'\(3, 5\)'),
    (lambda: F.focal_loss(torch.zeros(3, 4), torch.zeros(3)), TypeError,
     r'target must be an integer tensor of class indices, got dtype torch.float32'),
    (lambda: F.focal_loss(torch.full((2, 2), 1.5), torch.zeros(2, 2), activated=True),
     ValueError, r'pred must hold probabilities in \[0, 1\] with activated=True, got 1.5'),
    (lambda: F.focal_loss(torch.zeros(2, 2), torch.zeros(2, 2), gamma=-1.0), ValueError,
     r'gamma must be in \[0.0, inf\], got -1.0'),
    (lambda: F.cross_entropy_loss(torch.zeros(3, 4), torch.tensor([0, 4, 1])), ValueError,
     r'target must hold class indices in \[0, 3\] or ignore_index=-100, got 4'),
    (lambda: F.cross_entropy_loss(torch.zeros(3, 4), torch.tensor([0, 1, 1]),
                                  class_weight=[1.0, 2.0]), ValueError,
     r'class_weight must have one value per class \(4\), got shape \(2,\)'),
    (lambda: F.cross_entropy_loss(torch.zeros(4), torch.tensor([0, 1, 1, 1])), ValueError,
     r'pred must be 2-D or .* class scores \(N, C\), got shape \(4,\)'),
    (lambda: F.binary_cross_entropy_loss(torch.zeros(3, 2), torch.tensor([0, 3, 1])),
     ValueError, r'target must hold class indices in \[0, 2\] or ignore_index=-100, got 3'),
    (lambda: F.binary_cross_entropy_loss(torch.zeros(3, 2), torch.zeros(3, 2),
                                         pos_weight=[1.0]), ValueError,
     r'pos_weight must have one value per class \(2\), got shape \(1,\)'),
    (lambda: F.balanced_cross_entropy_loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]),
                                           class_counts=[3, 0]), ValueError,
     r'class_counts must all be > 0, got \[3, 0\]'),
    (lambda: F.balanced_cross_entropy_loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]),
                                           beta=1.0), ValueError,
     r'beta must be in \[0.0, 1.0\), got 1.0'),
    (lambda: F.balanced_cross_entropy_loss(torch.zeros(3, 2), torch.zeros(3, 2),
                                           use_sigmoid=True, beta=0.9), ValueError,
     r'class_counts and beta apply to the softmax form'),
    (lambda: F.hinge_loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]), multiclass='ovr'),
     ValueError, r"multiclass must be one of \('crammer_singer', 'weston_watkins'\), got 'ovr'"),
    (lambda: F.logistic_loss(torch.zeros(3), torch.tensor([0, 2, 1])), ValueError,
     r'target must hold binary labels in \{0, 1\} or \{-1, 1\}, got 2'),
    (lambda: F.softmax_focal_loss(torch.zeros(3, 2), torch.tensor([0, 2, 1])), ValueError,
     r'target must hold class indices in \[0, 1\] or ignore_index=-100, got 2'),
    (lambda: F.softmax_focal_loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]),
                                  alpha=[0.5, 0.5, 0.5]), ValueError,
     r'alpha must have one value per class \(2\), got shape \(3,\)'),
    (lambda: F.varifocal_loss(torch.zeros(3, 2), torch.zeros(3)), ValueError,
     r'target must have the shape of pred \(3, 2\), got \(3,\)'),
    (lambda: F.quality_focal_loss(torch.zeros(3, 2), (torch.tensor([0, 3, 1]), torch.ones(3))),
     ValueError, r'target\[0\] \(labels\) must hold class indices in \[0, 2\], got 3'),
    (lambda: F.quality_focal_loss(torch.zeros(3, 2), (torch.zeros(3, dtype=torch.long),)),
     ValueError, r'target must be \(labels, scores\) or a tensor, got a tuple of 1 items'),
    (lambda: F.distribution_focal_loss(torch.zeros(2, 5), torch.tensor([1.0, 4.5])),
     ValueError, r'target must be in \[0, 4\], got 4.5'),
    (lambda: F.kl_div_loss(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError,
     r'target must have the shape of pred \(2, 3\), got \(2, 4\)'),
    (lambda: F.kl_div_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0), ValueError,
     r'temperature must be in \(0.0, inf\], got 0.0'),
    (lambda: F.focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), avg_factor=-1.0),
     ValueError, r'avg_factor must be >= 0, got -1.0'),
    (lambda: F.focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), reduction='sum',
                          avg_factor=2.0), ValueError,
     r"reduction must be 'mean' or 'none' when avg_factor is given, got 'sum'"),
    (lambda: mmdet_losses.CrossEntropyLoss(use_sigmoid=True, use_mask=True), ValueError,
     r'use_sigmoid must be False with use_mask=True'),
    (lambda: mmdet_losses.HingeLoss(multiclass='x'), ValueError,
     r"multiclass must be one of .*, got 'x'"),
    (lambda: mmdet_losses.FocalLoss(alpha=1.5), ValueError,
     r'alpha must be in \[-inf, 1.0\], got 1.5'),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
