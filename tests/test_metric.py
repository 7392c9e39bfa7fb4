"""Metric-learning losses against torch's triplet_margin_loss / cdist, plain Python loops
written from the papers (batch-hard and batch-all mining, Hadsell's contrastive loss, Wen's
center loss) and hand-derived values."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as TF
from _helpers import HALF_DTYPES, assert_finite, assert_zero_in_graph, double_leaf

import mmdet_losses
from mmdet_losses import functional as F

# PK-style labels with a singleton class (label 3) whose anchor has no positive
LABELS = torch.tensor([0, 1, 0, 2, 1, 3, 2, 0])


def _embeddings(n=8, d=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------------------
# plain references, one element at a time
# ---------------------------------------------------------------------------------------------
def _hinge(g, soft):
    return math.log1p(math.exp(g)) if soft else max(0.0, g)


def _prepared(x, normalize):
    return [row / row.norm() if normalize else row for row in x.double()]


def ref_batch_hard(x, labels, margin, p=2.0, soft=False, normalize=False):
    """Per-anchor losses and the number of anchors with a positive and a negative."""
    rows, y = _prepared(x, normalize), labels.tolist()
    losses, count = [], 0
    for a in range(len(rows)):
        pos = [float(torch.dist(rows[a], rows[j], p)) for j in range(len(rows))
               if j != a and y[j] == y[a]]
        neg = [float(torch.dist(rows[a], rows[j], p)) for j in range(len(rows)) if y[j] != y[a]]
        if pos and neg:
            losses.append(_hinge(max(pos) - min(neg) + margin, soft))
            count += 1
        else:
            losses.append(0.0)
    return losses, count


def ref_batch_all(x, labels, margin, p=2.0, soft=False, normalize=False):
    """Losses of every valid (anchor, positive, negative) and the number of non-zero ones."""
    rows, y = _prepared(x, normalize), labels.tolist()
    n = len(rows)
    losses = {}
    for a in range(n):
        for q in range(n):
            if q == a or y[q] != y[a]:
                continue
            for r in range(n):
                if y[r] == y[a]:
                    continue
                losses[(a, q, r)] = _hinge(float(torch.dist(rows[a], rows[q], p))
                                           - float(torch.dist(rows[a], rows[r], p)) + margin,
                                           soft)
    return losses, sum(v > 0 for v in losses.values())


def ref_contrastive_pair(a, b, y, margin):
    """Hadsell et al. 2006, eq. (4) with their 1/2 factors; y = 1 for a similar pair."""
    d = math.sqrt(sum((float(u) - float(v)) ** 2 for u, v in zip(a, b)))
    return 0.5 * y * d ** 2 + 0.5 * (1 - y) * max(0.0, margin - d) ** 2


def ref_center(x, labels, centers):
    """Wen et al. 2016, eq. (2) per sample: 1/2 ||x_i - c_{y_i}||^2."""
    return [0.5 * sum((float(u) - float(c)) ** 2 for u, c in zip(x[i], centers[int(labels[i])]))
            for i in range(len(x))]


# ---------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('p', [1.0, 2.0, 3.0, math.inf])
def test_pairwise_distances_equal_cdist(p):
    x, y = _embeddings(6, 4, seed=1), _embeddings(3, 4, seed=2)
    torch.testing.assert_close(F.pairwise_distances(x, y, p=p), torch.cdist(x, y, p=p))
    torch.testing.assert_close(F.pairwise_distances(x, p=p), torch.cdist(x, x, p=p))
    assert torch.count_nonzero(F.pairwise_distances(x, p=p).diagonal()) == 0


def test_pairwise_distances_float32_accurate_far_from_origin():
    # |a|^2 + |b|^2 - 2ab cancels catastrophically at |x| ~ 1e3 in float32; centring avoids it
    x = _embeddings(8, 16, seed=3) + 1000.0
    exact = torch.cdist(x, x)  # float64
    ours = F.pairwise_distances(x.float())
    torch.testing.assert_close(ours.double(), exact, rtol=1e-4, atol=1e-3)


def test_pairwise_distances_squared():
    x = _embeddings(5, 3, seed=4)
    torch.testing.assert_close(F.pairwise_distances(x, squared=True), torch.cdist(x, x) ** 2)


@pytest.mark.parametrize('p', [1.0, 2.0, 3.0])
def test_pairwise_distances_gradient_at_zero_distance_is_zero(p):
    # two identical rows: d = 0 there, and the subgradient 0 (not NaN from sqrt(0))
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0]], requires_grad=True)
    d = F.pairwise_distances(x, p=p)
    assert torch.count_nonzero(d) == 0
    d.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_pairwise_distances_gradcheck():
    x, y = double_leaf(_embeddings(4, 3, seed=5)), double_leaf(_embeddings(3, 3, seed=6))
    assert torch.autograd.gradcheck(lambda a, b: F.pairwise_distances(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a: F.pairwise_distances(a, p=3.0), (x,))


def test_pairwise_distances_in_float32_under_autocast():
    x = _embeddings(8, 16, seed=3, dtype=torch.float32) + 30.0
    with torch.autocast('cpu', dtype=torch.bfloat16):
        d = F.pairwise_distances(x)
        loss = F.triplet_loss(x, LABELS)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, F.pairwise_distances(x))
    torch.testing.assert_close(loss, F.triplet_loss(x, LABELS))


# ---------------------------------------------------------------------------------------------
# explicit triplets against torch
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('margin', [0.5, 2.0])
@pytest.mark.parametrize('p', [1.0, 2.0, 3.0])
@pytest.mark.parametrize('swap', [False, True])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_triplet_margin_loss_equals_torch(margin, p, swap, reduction):
    a, pos, neg = (double_leaf(_embeddings(6, 4, seed=s)) for s in (7, 8, 9))
    ours = F.triplet_margin_loss(a, pos, neg, margin=margin, p=p, swap=swap, reduction=reduction)
    ref_inputs = [double_leaf(t) for t in (a, pos, neg)]
    ref = TF.triplet_margin_loss(*ref_inputs, margin=margin, p=p, swap=swap, reduction=reduction)
    torch.testing.assert_close(ours, ref)
    assert ours.detach().sum() > 0  # the case is not vacuous
    ours.sum().backward()
    ref.sum().backward()
    for got, want in zip((a, pos, neg), ref_inputs):
        torch.testing.assert_close(got.grad, want.grad)


def test_triplet_margin_loss_positional_arguments_as_torch():
    a, pos, neg = (_embeddings(3, 4, seed=s) for s in (1, 2, 3))
    torch.testing.assert_close(F.triplet_margin_loss(a, pos, neg, 1.5, 1.0, 1e-3, True),
                               TF.triplet_margin_loss(a, pos, neg, 1.5, 1.0, 1e-3, True))
    # a single (D,) triplet
    torch.testing.assert_close(F.triplet_margin_loss(a[0], pos[0], neg[0]),
                               TF.triplet_margin_loss(a[0], pos[0], neg[0]))


def test_triplet_margin_loss_weight_and_avg_factor():
    a, pos, neg = (_embeddings(4, 3, seed=s) for s in (4, 5, 6))
    per = TF.triplet_margin_loss(a, pos, neg, margin=3.0, reduction='none')
    w = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        F.triplet_margin_loss(a, pos, neg, margin=3.0, weight=w, avg_factor=2.0),
        (per * w).sum() / (2.0 + torch.finfo(torch.float32).eps))


def test_triplet_margin_loss_gradcheck():
    a, pos, neg = (double_leaf(_embeddings(3, 3, seed=s)) for s in (10, 11, 12))
    assert torch.autograd.gradcheck(
        lambda x, y, z: F.triplet_margin_loss(x, y, z, margin=5.0, swap=True), (a, pos, neg))


# ---------------------------------------------------------------------------------------------
# mined triplets against the loops
# ---------------------------------------------------------------------------------------------
MINING_PARAMS = [
    dict(margin=0.3), dict(margin=1.0, p=1.0), dict(margin=0.5, soft_margin=True),
    dict(margin=0.2, normalize=True), dict(margin=0.0, p=3.0, normalize=True, soft_margin=True),
]


def _loop_params(params):
    return dict(margin=params['margin'], p=params.get('p', 2.0),
                soft=params.get('soft_margin', False), normalize=params.get('normalize', False))


@pytest.mark.parametrize('params', MINING_PARAMS, ids=str)
def test_batch_hard_equals_loop(params):
    x = _embeddings()
    per_anchor, count = ref_batch_hard(x, LABELS, **_loop_params(params))
    assert count == 7 and sum(per_anchor) > 0  # the singleton anchor is left out
    want = torch.tensor(per_anchor, dtype=torch.float64)
    torch.testing.assert_close(F.triplet_loss(x, LABELS, reduction='none', **params), want)
    torch.testing.assert_close(F.triplet_loss(x, LABELS, reduction='sum', **params), want.sum())
    torch.testing.assert_close(F.triplet_loss(x, LABELS, **params), want.sum() / count)


@pytest.mark.parametrize('params', MINING_PARAMS, ids=str)
def test_batch_all_equals_loop(params):
    x = _embeddings()
    losses, active = ref_batch_all(x, LABELS, **_loop_params(params))
    assert active > 0
    want = torch.zeros(8, 8, 8, dtype=torch.float64)
    for index, value in losses.items():
        want[index] = value
    kwargs = dict(mining='batch_all', **params)
    torch.testing.assert_close(F.triplet_loss(x, LABELS, reduction='none', **kwargs), want)
    torch.testing.assert_close(F.triplet_loss(x, LABELS, reduction='sum', **kwargs), want.sum())
    torch.testing.assert_close(F.triplet_loss(x, LABELS, **kwargs), want.sum() / active)


def test_batch_all_mean_is_over_active_triplets_only():
    # two tight, far-apart classes: of the 8 valid triplets only anchor 0's two are active
    x = torch.tensor([[0.0], [0.5], [10.0], [10.1]], dtype=torch.float64)
    x[0] = 9.0  # anchor 0 is nearer to class 1 than to its positive
    y = torch.tensor([0, 0, 1, 1])
    losses, active = ref_batch_all(x, y, margin=0.3)
    assert (len(losses), active) == (8, 2)
    torch.testing.assert_close(F.triplet_loss(x, y, mining='batch_all', margin=0.3),
                               torch.tensor((7.8 + 7.7) / 2, dtype=torch.float64))


@pytest.mark.parametrize('chunk', [1, 1 << 22], ids=['one-anchor-chunks', 'one-chunk'])
def test_batch_all_summed_path_equals_full_tensor_path(monkeypatch, chunk):
    # 'mean'/'sum' of the hinge take a path without (N, N, N) tensors in the graph
    from mmdet_losses.functional import metric
    monkeypatch.setattr(metric, 'BATCH_ALL_CHUNK', chunk)
    x_full, x_summed = _embeddings().requires_grad_(True), _embeddings().requires_grad_(True)
    w = torch.linspace(0.5, 1.5, 8, dtype=torch.float64)
    full = F.triplet_loss(x_full, LABELS, w, mining='batch_all', reduction='none').sum()
    summed = F.triplet_loss(x_summed, LABELS, w, mining='batch_all', reduction='sum')
    torch.testing.assert_close(summed, full)
    full.backward()
    summed.backward()
    torch.testing.assert_close(x_summed.grad, x_full.grad)


def test_triplet_per_anchor_weight():
    x = _embeddings()
    w = torch.linspace(0.0, 2.0, 8, dtype=torch.float64)
    per_anchor, count = ref_batch_hard(x, LABELS, 0.3)
    torch.testing.assert_close(F.triplet_loss(x, LABELS, w),
                               (w * torch.tensor(per_anchor, dtype=torch.float64)).sum() / count)
    losses, active = ref_batch_all(x, LABELS, 0.3)
    want = sum(float(w[a]) * v for (a, _, _), v in losses.items()) / active
    torch.testing.assert_close(F.triplet_loss(x, LABELS, w, mining='batch_all'),
                               torch.tensor(want, dtype=torch.float64))


@pytest.mark.parametrize('mining', ['batch_hard', 'batch_all'])
@pytest.mark.parametrize('params', [dict(margin=0.3), dict(margin=0.5, soft_margin=True),
                                    dict(margin=0.3, normalize=True), dict(margin=1.0, p=1.0)],
                         ids=str)
def test_triplet_loss_gradcheck(mining, params):
    x = double_leaf(_embeddings(6, 3, seed=13))
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda e: F.triplet_loss(e, y, mining=mining, **params),
                                    (x,))


@pytest.mark.parametrize('mining', ['batch_hard', 'batch_all'])
@pytest.mark.parametrize('p', [1.0, 2.0, 3.0])
def test_triplet_identical_embeddings_finite_gradient(mining, p):
    # every distance is 0: the loss is the margin, the gradient the subgradient 0
    x = torch.ones(4, 3, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = F.triplet_loss(x, y, margin=0.3, p=p, mining=mining)
    torch.testing.assert_close(loss, torch.tensor(0.3))
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize('mining', ['batch_hard', 'batch_all'])
@pytest.mark.parametrize('labels', [[0, 1, 2, 3], [5, 5, 5, 5], [7], []],
                         ids=['all-singletons', 'one-class', 'one-sample', 'empty'])
@pytest.mark.parametrize('reduction', ['mean', 'sum'])
def test_triplet_no_valid_triplet_is_zero_in_graph(mining, labels, reduction):
    x = _embeddings(len(labels), 3, seed=14, dtype=torch.float32).requires_grad_(True)
    loss = F.triplet_loss(x, torch.tensor(labels, dtype=torch.long), mining=mining,
                          reduction=reduction)
    assert loss.shape == ()
    assert_zero_in_graph(loss, x)


def test_triplet_empty_none_reduction_shapes():
    x = torch.zeros(0, 3, requires_grad=True)
    y = torch.zeros(0, dtype=torch.long)
    assert F.triplet_loss(x, y, reduction='none').shape == (0,)
    assert F.triplet_loss(x, y, reduction='none', mining='batch_all').shape == (0, 0, 0)


@pytest.mark.parametrize('dtype', HALF_DTYPES)
@pytest.mark.parametrize('mining', ['batch_hard', 'batch_all'])
def test_triplet_half_precision_computed_in_float32(dtype, mining):
    x = _embeddings(dtype=dtype).requires_grad_(True)
    loss = F.triplet_loss(x, LABELS, mining=mining, margin=1.0)
    assert loss.dtype == dtype
    want = F.triplet_loss(x.detach().float(), LABELS, mining=mining, margin=1.0)
    torch.testing.assert_close(loss.float(), want.to(dtype).float())
    loss.backward()
    assert x.grad.dtype == dtype
    assert_finite(x.grad)


# ---------------------------------------------------------------------------------------------
# contrastive
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('margin', [0.5, 1.0, 3.0])
def test_contrastive_pairs_equal_hadsell_formula(margin):
    x1, x2 = _embeddings(6, 3, seed=15), _embeddings(6, 3, seed=16) * 0.5
    y = torch.tensor([1, 0, 0, 1, 0, 1])
    want = torch.tensor([ref_contrastive_pair(a, b, int(s), margin)
                         for a, b, s in zip(x1, x2, y)], dtype=torch.float64)
    torch.testing.assert_close(F.contrastive_loss(x1, x2, y, margin, reduction='none'), want)
    torch.testing.assert_close(F.contrastive_loss(x1, x2, y.bool(), margin), want.mean())
    # soft labels interpolate between the two terms
    soft = torch.full((6,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(
        F.contrastive_loss(x1, x2, soft, margin, reduction='none'),
        torch.tensor([0.25 * ref_contrastive_pair(a, b, 1, margin)
                      + 0.75 * ref_contrastive_pair(a, b, 0, margin) for a, b in zip(x1, x2)],
                     dtype=torch.float64))


@pytest.mark.parametrize('margin', [0.5, 2.5])
def test_pairwise_contrastive_equals_loop_over_pairs(margin):
    x = _embeddings()
    n = len(x)
    want = torch.tensor([ref_contrastive_pair(x[i], x[j], int(LABELS[i] == LABELS[j]), margin)
                         for i in range(n) for j in range(i + 1, n)], dtype=torch.float64)
    got = F.pairwise_contrastive_loss(x, LABELS, reduction='none', margin=margin)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(F.pairwise_contrastive_loss(x, LABELS, margin=margin),
                               want.mean())
    i, j = torch.triu_indices(n, n, 1)
    torch.testing.assert_close(
        got, F.contrastive_loss(x[i], x[j], LABELS[i] == LABELS[j], margin, reduction='none'))


def test_contrastive_dissimilar_identical_pair_finite_gradient():
    # d = 0 for a dissimilar pair: loss m^2 / 2, gradient the subgradient 0 (no NaN)
    x = torch.tensor([[1.0, -2.0], [1.0, -2.0]], requires_grad=True)
    loss = F.pairwise_contrastive_loss(x, torch.tensor([0, 1]), margin=2.0)
    torch.testing.assert_close(loss, torch.tensor(2.0))
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    a = torch.zeros(1, 2, requires_grad=True)
    F.contrastive_loss(a, torch.zeros(1, 2), torch.tensor([0])).backward()
    assert torch.equal(a.grad, torch.zeros_like(a))


def test_contrastive_gradcheck():
    x1, x2 = double_leaf(_embeddings(4, 3, seed=17)), double_leaf(_embeddings(4, 3, seed=18))
    y = torch.tensor([1, 0, 0, 1])
    assert torch.autograd.gradcheck(lambda a, b: F.contrastive_loss(a, b, y, 4.0), (x1, x2))
    x = double_leaf(_embeddings(5, 3, seed=19) * 0.6)
    assert torch.autograd.gradcheck(
        lambda e: F.pairwise_contrastive_loss(e, torch.tensor([0, 1, 0, 1, 1]), margin=1.5),
        (x,))


@pytest.mark.parametrize('n', [0, 1])
def test_pairwise_contrastive_without_pairs_is_zero_in_graph(n):
    x = torch.randn(n, 3, requires_grad=True)
    loss = F.pairwise_contrastive_loss(x, torch.zeros(n, dtype=torch.long))
    assert F.pairwise_contrastive_loss(x, torch.zeros(n, dtype=torch.long),
                                       reduction='none').shape == (0,)
    assert_zero_in_graph(loss, x)


@pytest.mark.parametrize('dtype', HALF_DTYPES)
def test_contrastive_half_precision(dtype):
    x = _embeddings(dtype=dtype).requires_grad_(True)
    loss = F.pairwise_contrastive_loss(x, LABELS, margin=2.0)
    assert loss.dtype == dtype
    want = F.pairwise_contrastive_loss(x.detach().float(), LABELS, margin=2.0)
    torch.testing.assert_close(loss.float(), want.to(dtype).float())
    loss.backward()
    assert x.grad.dtype == dtype
    assert_finite(x.grad)


# ---------------------------------------------------------------------------------------------
# center
# ---------------------------------------------------------------------------------------------
def test_center_loss_equals_wen_formula():
    x, centers = _embeddings(), _embeddings(4, 5, seed=20)
    want = torch.tensor(ref_center(x, LABELS, centers), dtype=torch.float64)
    torch.testing.assert_close(F.center_loss(x, LABELS, reduction='none', centers=centers), want)
    torch.testing.assert_close(F.center_loss(x, LABELS, centers=centers), want.mean())


def test_center_loss_gradients_by_hand():
    # dL/dx_i = (x_i - c_{y_i}) / N, dL/dc_k = -sum_{i: y_i = k} (x_i - c_k) / N
    x = _embeddings().requires_grad_(True)
    module = mmdet_losses.CenterLoss(num_classes=4, feat_dim=5).double()
    module(x, LABELS).backward()
    c = module.centers.detach()
    residual = x.detach() - c[LABELS]
    torch.testing.assert_close(x.grad, residual / 8)
    want = torch.zeros_like(c).index_add_(0, LABELS, -residual / 8)
    torch.testing.assert_close(module.centers.grad, want)


def test_center_loss_centres_are_a_parameter_the_optimiser_moves():
    module = mmdet_losses.CenterLoss(num_classes=4, feat_dim=5)
    assert [name for name, _ in module.named_parameters()] == ['centers']
    assert 'centers' in module.state_dict()
    x = _embeddings(dtype=torch.float32)
    before = module.centers.detach().clone()
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    module(x, LABELS).backward()
    opt.step()
    # one SGD step: c_k += lr * sum_{i: y_i = k} (x_i - c_k) / N
    want = before.index_add(0, LABELS, 0.5 * (x - before[LABELS]) / 8)
    torch.testing.assert_close(module.centers.detach(), want)


def test_center_loss_gradcheck():
    x, centers = double_leaf(_embeddings(5, 3, seed=21)), double_leaf(_embeddings(3, 3, seed=22))
    y = torch.tensor([0, 2, 2, 1, 0])
    assert torch.autograd.gradcheck(lambda a, c: F.center_loss(a, y, centers=c), (x, centers))


def test_center_loss_empty_is_zero_in_graph():
    x = torch.zeros(0, 4, requires_grad=True)
    module = mmdet_losses.CenterLoss(3, 4)
    loss = module(x, torch.zeros(0, dtype=torch.long))
    assert_zero_in_graph(loss, x)
    assert torch.count_nonzero(module.centers.grad) == 0


@pytest.mark.parametrize('dtype', HALF_DTYPES)
def test_center_loss_half_precision(dtype):
    module = mmdet_losses.CenterLoss(4, 5)
    x = _embeddings(dtype=dtype).requires_grad_(True)
    loss = module(x, LABELS)
    assert loss.dtype == dtype
    want = F.center_loss(x.detach().float(), LABELS, centers=module.centers.detach())
    torch.testing.assert_close(loss.float(), want.to(dtype).float())
    loss.backward()
    assert x.grad.dtype == dtype and module.centers.grad.dtype == torch.float32
    assert_finite(x.grad, module.centers.grad)


# ---------------------------------------------------------------------------------------------
# modules: (module, functional, reference) triples
# ---------------------------------------------------------------------------------------------
def _ref_hard_mean(x, y, **kw):
    losses, count = ref_batch_hard(x, y, **kw)
    return sum(losses) / count


def _ref_all_mean(x, y, **kw):
    losses, active = ref_batch_all(x, y, **kw)
    return sum(losses.values()) / active


def _ref_contrastive_mean(x, y, margin):
    n = len(x)
    pairs = [ref_contrastive_pair(x[i], x[j], int(y[i] == y[j]), margin)
             for i in range(n) for j in range(i + 1, n)]
    return sum(pairs) / len(pairs)


MODULE_CASES = [
    ('TripletLoss', dict(margin=0.3), partial(F.triplet_loss, margin=0.3),
     partial(_ref_hard_mean, margin=0.3)),
    ('TripletLoss', dict(margin=0.5, mining='batch_all', p=1.0, soft_margin=True),
     partial(F.triplet_loss, margin=0.5, mining='batch_all', p=1.0, soft_margin=True),
     partial(_ref_all_mean, margin=0.5, p=1.0, soft=True)),
    ('TripletLoss', dict(margin=0.2, normalize=True, hard_mining=False),
     partial(F.triplet_loss, margin=0.2, normalize=True, mining='batch_all'),
     partial(_ref_all_mean, margin=0.2, normalize=True)),
    ('ContrastiveLoss', dict(margin=2.0), partial(F.pairwise_contrastive_loss, margin=2.0),
     partial(_ref_contrastive_mean, margin=2.0)),
]


@pytest.mark.parametrize('name,params,fn,ref', MODULE_CASES,
                         ids=[f'{c[0]}-{c[1]}' for c in MODULE_CASES])
def test_module_equals_functional_and_reference(name, params, fn, ref):
    x = _embeddings()
    module = getattr(mmdet_losses, name)(loss_weight=1.5, **params)
    torch.testing.assert_close(module(x, LABELS),
                               torch.tensor(1.5 * ref(x, LABELS), dtype=torch.float64))
    torch.testing.assert_close(module(x, LABELS, reduction_override='none'),
                               1.5 * fn(x, LABELS, reduction='none'))
    built = mmdet_losses.MODELS.build(
        dict(type=f'mmdet_losses.{name}', loss_weight=1.5, **params))
    torch.testing.assert_close(built(x, LABELS), module(x, LABELS))


def test_center_module_equals_functional():
    x = _embeddings()
    module = mmdet_losses.CenterLoss(4, 5, loss_weight=0.5).double()
    w = torch.rand(8, dtype=torch.float64)
    torch.testing.assert_close(
        module(x, LABELS, w, avg_factor=3.0),
        0.5 * F.center_loss(x, LABELS, w, avg_factor=3.0, centers=module.centers))


@pytest.mark.parametrize('cfg', [dict(type='mmdet_losses.TripletLoss', margin=0.4),
                                 dict(type='mmdet_losses.ContrastiveLoss'),
                                 dict(type='mmdet_losses.CenterLoss', num_classes=3,
                                      feat_dim=2)])
def test_scoped_name_builds_from_mmengine_root_registry(cfg):
    from mmengine.registry import MODELS as ROOT
    module = ROOT.build(cfg)
    assert type(module) is getattr(mmdet_losses, cfg['type'].split('.')[1])
    if cfg.get('margin') is not None:
        assert module.margin == cfg['margin']


def test_triplet_hard_mining_flag_of_mmdet():
    assert mmdet_losses.TripletLoss(hard_mining=True).mining == 'batch_hard'
    assert mmdet_losses.TripletLoss(hard_mining=False).mining == 'batch_all'
    x = _embeddings()
    torch.testing.assert_close(mmdet_losses.TripletLoss(hard_mining=True)(x, LABELS),
                               F.triplet_loss(x, LABELS, margin=0.3, mining='batch_hard'))


def test_gather_distributed_without_process_group_is_local():
    x = _embeddings()
    torch.testing.assert_close(
        mmdet_losses.TripletLoss(gather_distributed=True)(x, LABELS),
        mmdet_losses.TripletLoss()(x, LABELS))


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
X = _embeddings(4, 3, dtype=torch.float32)
Y = torch.tensor([0, 1, 0, 1])
BAD_CALLS = [
    ('pred', TypeError, lambda: F.triplet_loss(X.long(), Y)),
    ('pred', ValueError, lambda: F.triplet_loss(X[0], Y)),
    ('target', TypeError, lambda: F.triplet_loss(X, Y.float())),
    ('target', ValueError, lambda: F.triplet_loss(X, Y[:3])),
    ('mining', ValueError, lambda: F.triplet_loss(X, Y, mining='semi_hard')),
    ('margin', ValueError, lambda: F.triplet_loss(X, Y, margin=-0.1)),
    ('p', ValueError, lambda: F.triplet_loss(X, Y, p=0.5)),
    ('reduction', ValueError, lambda: F.triplet_loss(X, Y, reduction='avg')),
    ('avg_factor', ValueError, lambda: F.triplet_loss(X, Y, reduction='sum', avg_factor=2.0)),
    ('weight', ValueError, lambda: F.triplet_loss(X, Y, torch.ones(3))),
    ('negative', ValueError, lambda: F.triplet_margin_loss(X, X, X[:2])),
    ('anchor', ValueError, lambda: F.triplet_margin_loss(X[None], X[None], X[None])),
    ('eps', ValueError, lambda: F.triplet_margin_loss(X, X, X, eps=-1.0)),
    ('similar', ValueError, lambda: F.contrastive_loss(X, X, Y[:2])),
    ('x2', ValueError, lambda: F.contrastive_loss(X, X[:, :2], Y)),
    ('margin', ValueError, lambda: F.pairwise_contrastive_loss(X, Y, margin=-1.0)),
    ('target', ValueError, lambda: F.center_loss(X, torch.tensor([0, 1, 2, 3]),
                                                 centers=torch.zeros(3, 3))),
    ('target', ValueError, lambda: F.center_loss(X, torch.tensor([0, -1, 0, 0]),
                                                 centers=torch.zeros(3, 3))),
    ('centers', ValueError, lambda: F.center_loss(X, Y, centers=torch.zeros(3, 2))),
    ('centers', TypeError, lambda: F.center_loss(X, Y, centers=[[0.0] * 3] * 2)),
    ('y', ValueError, lambda: F.pairwise_distances(X, torch.zeros(2, 4))),
    ('mining', ValueError, lambda: mmdet_losses.TripletLoss(mining='hard')),
    ('hard_mining', ValueError, lambda: mmdet_losses.TripletLoss(mining='batch_all',
                                                                 hard_mining=True)),
    ('hard_mining', TypeError, lambda: mmdet_losses.TripletLoss(hard_mining='yes')),
    ('gather_distributed', TypeError, lambda: mmdet_losses.TripletLoss(gather_distributed=1)),
    ('weight', ValueError, lambda: mmdet_losses.ContrastiveLoss(gather_distributed=True)(
        X, Y, torch.ones(6))),
    ('num_classes', ValueError, lambda: mmdet_losses.CenterLoss(0, 3)),
    ('feat_dim', TypeError, lambda: mmdet_losses.CenterLoss(3, 2.0)),
    ('centers', ValueError, lambda: mmdet_losses.CenterLoss(2, 4)(X, Y)),
]


@pytest.mark.parametrize('argument,error,call', BAD_CALLS,
                         ids=[f'{i}-{c[0]}' for i, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(argument, error, call):
    with pytest.raises(error, match=argument):
        call()
