"""mmdet 3.3.0's AssociativeEmbeddingLoss (CornerNet's pull and push losses of the corner
embeddings) as a drop-in: mmdet's call form ``loss(tl_emb, br_emb, match) -> (pull, push)``
gives mmdet's values and gradients (several images with 0, 1 and many objects, 1 and 2
embedding channels, float32 and float64), the formula written out here, float64 gradcheck,
empty input, half precision computed in float32, NaN in -> NaN out, and bad shapes refused
naming them; mmdet's own CornerHead test (tests/test_models/test_dense_heads/
test_corner_head.py, reproduced) passes with ours in the head. The per-object form the
contract suite calls (tests/test_contract*.py, inputs in tests/_zoo_inputs.py) is checked
against the same formula."""
import pytest
import torch

import mmdet_losses as M
from mmdet_losses import functional as F

mmdet_losses_mod = pytest.importorskip('mmdet.models.losses', reason='mmdet 3.3.0 reference')
MMDetAE = mmdet_losses_mod.AssociativeEmbeddingLoss

NAN = float('nan')


def _maps(batch=3, channels=1, size=6, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    return (torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype),
            torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype))


def _match(counts, size=6, seed=1):
    """Per image, ``count`` objects at random corners (a top-left above and left of its
    bottom-right, as CornerHead's targets are)."""
    gen = torch.Generator().manual_seed(seed)
    match = []
    for count in counts:
        pairs = []
        for _ in range(count):
            y0, x0 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=gen))
            y1, x1 = (int(v) for v in torch.randint(size // 2, size, (2,), generator=gen))
            pairs.append([[y0, x0], [y1, x1]])
        match.append(pairs)
    return match


def _pull_push_by_hand(tl_map, br_map, match, pull_weight=0.25, push_weight=0.25):
    """CornerNet's formula, one image and one object at a time, in float64: every channel an
    embedding (as mmdet's reads them)."""
    pull_all = push_all = 0.0
    for b, pairs in enumerate(match):
        tl = [float(tl_map[b, c, y, x]) for (y, x), _ in pairs for c in range(tl_map.shape[1])]
        br = [float(br_map[b, c, y, x]) for _, (y, x) in pairs for c in range(br_map.shape[1])]
        n = len(tl)
        means = [(a + b_) / 2 for a, b_ in zip(tl, br)]
        if n:
            pull_all += pull_weight * sum((a - e) ** 2 + (b_ - e) ** 2
                                          for a, b_, e in zip(tl, br, means)) / n
        if n > 1:
            push_all += push_weight * sum(max(0.0, 1 - abs(means[k] - means[j]))
                                          for k in range(n) for j in range(n) if k != j) \
                / (n * (n - 1))
    return pull_all, push_all


COUNTS = [(2, 0, 1), (0, 0, 0), (1,), (5, 3), (4, 1, 0, 6)]


# ------------------------------------------------------------------- mmdet's form vs mmdet
@pytest.mark.parametrize('channels', [1, 2])
@pytest.mark.parametrize('counts', COUNTS, ids=str)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_values_and_gradients_equal_mmdet(counts, channels, dtype):
    match = _match(counts)
    ctor = dict(pull_weight=0.3, push_weight=0.7)
    results = []
    for module in (M.AssociativeEmbeddingLoss(**ctor), MMDetAE(**ctor)):
        tl, br = (t.requires_grad_(True) for t in _maps(len(counts), channels, dtype=dtype))
        pull, push = module(tl, br, match)
        total = pull * 1.3 + push * 0.6  # both parts' gradients, told apart
        # mmdet's result of images without objects does not read br (its grad is None)
        grads = torch.autograd.grad(total, (tl, br), allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, (tl, br))]
        results.append((torch.as_tensor(pull, dtype=dtype).detach(),
                        torch.as_tensor(push, dtype=dtype).detach(), *grads))
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == torch.float32 else dict(rtol=1e-12, atol=0)
    for name, ours, theirs in zip(('pull', 'push', 'grad tl', 'grad br'), *results):
        torch.testing.assert_close(ours, theirs, **tol, msg=lambda m, n=name: f'{n}: {m}')


def test_many_objects_with_close_embeddings_push_equals_mmdet():
    """Embeddings within the margin of each other (every pair pushes), 12 objects in one image
    and 7 in another."""
    tl, br = (t * 0.3 for t in _maps(2, 1, size=8, seed=4))
    match = _match((12, 7), size=8, seed=5)
    ours = M.AssociativeEmbeddingLoss()(tl, br, match)
    theirs = MMDetAE()(tl, br, match)
    assert float(ours[1]) > 0.1
    torch.testing.assert_close(torch.stack(ours), torch.stack(theirs), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('counts', [(3, 1, 0), (2, 2)], ids=str)
def test_values_equal_the_formula_by_hand(counts):
    tl, br = _maps(len(counts), 2, dtype=torch.float64)
    match = _match(counts, seed=3)
    pull, push = M.AssociativeEmbeddingLoss(pull_weight=0.5, push_weight=2.0)(tl, br, match)
    want = _pull_push_by_hand(tl, br, match, 0.5, 2.0)
    assert pull.item() == pytest.approx(want[0], rel=1e-12, abs=1e-15)
    assert push.item() == pytest.approx(want[1], rel=1e-12, abs=1e-15)


def test_hand_derived_numbers():
    """Two objects of one image: top-left 0.5 and 0, bottom-right 0.3 and 2 give means 0.4
    and 1; pull = 0.25 (0.01 + 0.01 + 1 + 1) / 2 = 0.2525, push = 0.25 (2 x 0.4) / 2 = 0.1."""
    tl, br = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    tl[0, 0, 0, 0], br[0, 0, 3, 3], br[0, 0, 2, 2] = 0.5, 0.3, 2.0
    pull, push = M.AssociativeEmbeddingLoss()(tl, br, [[[[0, 0], [3, 3]], [[1, 1], [2, 2]]]])
    assert pull.item() == pytest.approx(0.2525, rel=1e-6)
    assert push.item() == pytest.approx(0.1, rel=1e-6)


def test_loss_weight_scales_both_parts():
    tl, br = _maps(2, 1)
    match = _match((3, 2))
    base = M.AssociativeEmbeddingLoss()(tl, br, match)
    scaled = M.AssociativeEmbeddingLoss(loss_weight=2.5)(tl, br, match)
    torch.testing.assert_close(torch.stack(scaled), 2.5 * torch.stack(base))


def test_tuple_match_and_numpy_indices_are_accepted():
    np = pytest.importorskip('numpy')
    tl, br = _maps(2, 1)
    match = _match((2, 1))
    as_tuples = tuple(tuple(((np.int64(a), b), (c, d)) for (a, b), (c, d) in pairs)
                      for pairs in match)
    torch.testing.assert_close(torch.stack(M.AssociativeEmbeddingLoss()(tl, br, as_tuples)),
                               torch.stack(M.AssociativeEmbeddingLoss()(tl, br, match)))


# ------------------------------------------------------------ gradcheck, empty, half, NaN
def test_gradcheck_float64_mmdet_form():
    tl, br = (t.requires_grad_(True) for t in _maps(2, 2, size=5, dtype=torch.float64))
    match = _match((3, 2), size=5, seed=7)
    loss = M.AssociativeEmbeddingLoss(pull_weight=0.4, push_weight=0.9)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, match), (tl, br))
    assert torch.autograd.gradgradcheck(lambda a, b: loss(a, b, match), (tl, br))


def test_gradcheck_float64_per_object_form():
    gen = torch.Generator().manual_seed(2)
    tl = (torch.randn(6, generator=gen, dtype=torch.float64) * 0.5).requires_grad_(True)
    br = (torch.randn(6, generator=gen, dtype=torch.float64) * 0.5).requires_grad_(True)
    ids = torch.tensor([0, 0, 0, 1, 1, 2])
    weight = torch.rand(6, generator=gen, dtype=torch.float64) + 0.5
    loss = M.AssociativeEmbeddingLoss()
    assert torch.autograd.gradcheck(
        lambda a, b: loss(a, b, weight, image_ids=ids, reduction_override='none'), (tl, br))


@pytest.mark.parametrize('counts', [(), (0,), (0, 0, 0)], ids=str)
def test_empty_input_gives_zeros_in_the_graph(counts):
    tl, br = (t.requires_grad_(True) for t in _maps(len(counts), 1))
    pull, push = M.AssociativeEmbeddingLoss()(tl, br, [[] for _ in counts])
    assert pull.item() == 0.0 and push.item() == 0.0
    assert pull.requires_grad and push.requires_grad
    grads = torch.autograd.grad(pull + push, (tl, br))
    assert all(g.shape == tl.shape and not g.any() for g in grads)
    # mmdet's gives the same zeros (Python floats for a batch of no image)
    theirs = MMDetAE()(tl, br, [[] for _ in counts])
    assert [float(torch.as_tensor(v).detach()) for v in theirs] == [0.0, 0.0]


def test_empty_per_object_form():
    pred = torch.zeros(0, requires_grad=True)
    for reduction in ('mean', 'sum'):
        loss = M.AssociativeEmbeddingLoss()(pred, torch.zeros(0), reduction_override=reduction)
        assert loss.item() == 0.0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, pred)
        assert g.shape == (0,)
    assert M.AssociativeEmbeddingLoss()(pred, torch.zeros(0),
                                        reduction_override='none').shape == (0,)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_maps_are_computed_in_float32(dtype):
    tl, br = _maps(3, 1)
    tl, br = tl.to(dtype), br.to(dtype)
    match = _match((2, 0, 3))
    got = M.AssociativeEmbeddingLoss()(tl, br, match)
    want = M.AssociativeEmbeddingLoss()(tl.float(), br.float(), match)  # the same values
    info = torch.finfo(dtype)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), w.to(dtype).float(), rtol=info.eps, atol=0)
    # the per-object form keeps pred's dtype too, with a float32 target
    pred = torch.tensor([0.5, -0.25, 1.0], dtype=dtype)
    target = torch.tensor([0.3001, 0.7, 1.2])
    out = M.AssociativeEmbeddingLoss()(pred, target, reduction_override='none')
    assert out.dtype == dtype
    torch.testing.assert_close(
        out.float(), M.AssociativeEmbeddingLoss()(pred.float(), target,
                                                  reduction_override='none').to(dtype).float())


@pytest.mark.parametrize('bad', [NAN, float('inf'), -float('inf')])
@pytest.mark.parametrize('where', ['tl', 'br'])
def test_nonfinite_corner_embedding_gives_nonfinite_loss_and_gradient(bad, where):
    tl, br = _maps(2, 1)
    match = [[[[0, 0], [4, 4]], [[1, 2], [5, 3]]], [[[2, 2], [3, 3]]]]
    if where == 'tl':
        tl[0, 0, 0, 0] = bad
    else:
        br[0, 0, 4, 4] = bad
    tl.requires_grad_(True)
    br.requires_grad_(True)
    pull, push = M.AssociativeEmbeddingLoss()(tl, br, match)
    assert not torch.isfinite(pull) and not torch.isfinite(push)
    grads = torch.autograd.grad(pull + push, (tl, br))
    leaf = grads[0][0, 0, 0, 0] if where == 'tl' else grads[1][0, 0, 4, 4]
    assert not torch.isfinite(leaf)
    # as mmdet's for a NaN (it gives a non-finite pull and push for that image too)
    if bad != bad:
        theirs = MMDetAE()(tl.detach(), br.detach(), match)
        assert all(torch.isnan(t) for t in theirs)


def test_nonfinite_alone_in_its_image_is_still_nonfinite():
    """An object alone in its image has no push partner: its push would be 0 whatever its
    embedding; a NaN there still makes the loss NaN."""
    pred = torch.tensor([NAN, 0.5, 0.1], requires_grad=True)
    out = M.AssociativeEmbeddingLoss()(pred, torch.tensor([0.2, 0.4, 0.3]),
                                       image_ids=torch.tensor([0, 1, 1]),
                                       reduction_override='none')
    assert torch.isnan(out[0]) and torch.isfinite(out[1:]).all()
    (g,) = torch.autograd.grad(out.sum(), pred)
    assert torch.isnan(g[0]) and torch.isfinite(g[1:]).all()


# ------------------------------------------------------------------------ per-object form
def test_per_object_form_sums_to_mmdets_pull_plus_push():
    tl_map, br_map = _maps(3, 1, dtype=torch.float64)
    match = _match((4, 0, 2))
    pull, push = M.AssociativeEmbeddingLoss(pull_weight=0.3, push_weight=0.6)(tl_map, br_map,
                                                                             match)
    tl, br, ids = F.corner_embeddings(tl_map, br_map, match)
    loss = M.AssociativeEmbeddingLoss(pull_weight=0.3, push_weight=0.6)
    total = loss(tl, br, image_ids=ids, reduction_override='sum')
    assert total.item() == pytest.approx((pull + push).item(), rel=1e-12)
    # 'mean' over objects and avg_factor, weight as every loss
    none = loss(tl, br, image_ids=ids, reduction_override='none')
    assert none.shape == (6,)
    weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    assert loss(tl, br, weight, image_ids=ids).item() == pytest.approx(
        (none * weight).mean().item(), rel=1e-12)
    assert loss(tl, br, weight, image_ids=ids, avg_factor=2.0).item() == pytest.approx(
        (none * weight).sum().item() / (2.0 + torch.finfo(torch.float32).eps), rel=1e-9)


def test_per_object_values_by_hand():
    """Objects 0, 1 in image 0 and 2 alone in image 1: means 0.1, 0.5, 3; pull 0.02 for the
    first (over n = 2), push relu(1 - 0.4) = 0.6 each way (over n (n - 1) = 2)."""
    out = F.associative_embedding_loss(torch.tensor([0.0, 0.5, 3.0]),
                                       torch.tensor([0.2, 0.5, 3.0]), reduction='none',
                                       image_ids=torch.tensor([0, 0, 1]),
                                       pull_weight=1.0, push_weight=1.0)
    torch.testing.assert_close(out, torch.tensor([0.01 + 0.3, 0.3, 0.0]))


# ------------------------------------------------------------------------------- errors
def _raises(kind, *words):
    return pytest.raises(kind, match='(?s)' + '.*'.join(words))


def test_bad_maps_and_match_are_refused_naming_them():
    loss = M.AssociativeEmbeddingLoss()
    tl, br = _maps(2, 1, size=4)
    ok = [[[[0, 0], [3, 3]]], []]
    with _raises(ValueError, 'pred', r'\(B, C, H, W\)', r'\(2, 4, 4\)'):
        loss(tl[:, 0], br[:, 0], ok)
    with _raises(ValueError, 'target', r'\(2, 1, 4, 4\)', r'\(2, 1, 4, 3\)'):
        loss(tl, br[..., :3], ok)
    with _raises(ValueError, 'match', 'one entry per image', '2', 'got 1'):
        loss(tl, br, ok[:1])
    with _raises(ValueError, r'match\[0\]\[0\]\[1\]\[0\]', r'\[0, 3\]', 'got 4'):
        loss(tl, br, [[[[0, 0], [4, 3]]], []])
    with _raises(ValueError, r'match\[0\]\[0\]\[0\]\[1\]', 'got -1'):
        loss(tl, br, [[[[0, -1], [3, 3]]], []])
    with _raises(TypeError, r'match\[0\]\[0\]\[0\]\[0\]', 'integer', 'float'):
        loss(tl, br, [[[[0.5, 0], [3, 3]]], []])
    with _raises(ValueError, r'match\[1\]\[0\]', r'\[\[tl_y, tl_x\], \[br_y, br_x\]\]'):
        loss(tl, br, [[], [[0, 0, 3, 3]]])
    with _raises(TypeError, r'match\[1\]', 'list'):
        loss(tl, br, [[], 'x'])
    with _raises(TypeError, 'match', 'str'):
        loss(tl, br, 'abc')
    with _raises(TypeError, 'pred', 'floating', 'int64'):
        loss(tl.long(), br, ok)
    with _raises(TypeError, "mmdet's form", 'per-object form', 'got weight'):
        loss(tl, br, ok, weight=torch.ones(1))


def test_bad_per_object_inputs_are_refused_naming_them():
    loss = M.AssociativeEmbeddingLoss()
    pred, target = torch.zeros(3), torch.zeros(3)
    with _raises(ValueError, 'pred', r'\(N,\)', r'\(3, 2\)'):
        loss(torch.zeros(3, 2), torch.zeros(3, 2))
    with _raises(ValueError, 'target', r'\(3,\)', r'\(4,\)'):
        loss(pred, torch.zeros(4))
    with _raises(ValueError, 'image_ids', r'\(3,\)', r'\(2,\)'):
        loss(pred, target, image_ids=torch.tensor([0, 1]))
    with _raises(TypeError, 'image_ids', 'integer', 'float32'):
        loss(pred, target, image_ids=torch.zeros(3))
    with _raises(ValueError, 'weight', r'\(3,\)', r'\(2,\)'):
        loss(pred, target, torch.ones(2))
    with _raises(TypeError, 'weight given twice'):
        loss(pred, target, torch.ones(3), weight=torch.ones(3))


@pytest.mark.parametrize('arg', ['pull_weight', 'push_weight', 'loss_weight'])
def test_bad_constructor_numbers_are_refused(arg):
    with _raises(ValueError, arg, 'nan'):
        M.AssociativeEmbeddingLoss(**{arg: NAN})
    with _raises(TypeError, arg):
        M.AssociativeEmbeddingLoss(**{arg: True})


# ------------------------------------------------- mmdet's own test, through its CornerHead
def _corner_head_losses(loss_embedding):
    from mmengine.structures import InstanceData
    from mmdet.models.dense_heads import CornerHead
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    s = 256
    img_metas = [{'img_shape': (s, s, 3), 'scale_factor': 1, 'batch_input_shape': (s, s, 3)}]
    torch.manual_seed(0)
    head = CornerHead(num_classes=4, in_channels=1, loss_embedding=loss_embedding)
    feat = [torch.rand(1, 1, s // 4, s // 4) for _ in range(head.num_feat_levels)]
    outputs = head.forward(feat)
    boxes = [torch.empty((0, 4)), torch.Tensor([[23.6667, 23.8757, 238.6326, 151.8874]]),
             torch.Tensor([[23.6667, 23.8757, 238.6326, 151.8874],
                           [123.6667, 123.8757, 138.6326, 251.8874]])]
    labels = [torch.LongTensor([]), torch.LongTensor([2]), torch.LongTensor([2, 3])]
    out = []
    for bboxes, gt_labels in zip(boxes, labels):
        gt = InstanceData(bboxes=bboxes, labels=gt_labels)
        losses = head.loss_by_feat(*outputs, [gt], img_metas, None)
        out.append({k: sum(v) for k, v in losses.items()})
    return out


def test_mmdet_corner_head_test_passes_with_ours():
    """mmdet's test_corner_head_loss: no push or pull loss without boxes, no push loss but a
    pull loss for one box, push >= 0 and pull > 0 for two; and every loss of the head equals
    the head's with mmdet's own AssociativeEmbeddingLoss."""
    pytest.importorskip('mmcv.ops', reason="CornerHead's corner pooling")
    ours = _corner_head_losses(dict(type='mmdet_losses.AssociativeEmbeddingLoss',
                                    pull_weight=0.1, push_weight=0.1))
    theirs = _corner_head_losses(dict(type='AssociativeEmbeddingLoss',
                                      pull_weight=0.1, push_weight=0.1))
    empty, one, two = ours
    assert empty['det_loss'].item() > 0
    assert empty['push_loss'].item() == 0 and empty['pull_loss'].item() == 0
    assert one['push_loss'].item() == 0 and one['pull_loss'].item() > 0
    assert two['push_loss'].item() >= 0 and two['pull_loss'].item() > 0
    for got, want in zip(ours, theirs):
        assert got.keys() == want.keys()
        for key in got:
            torch.testing.assert_close(got[key], want[key], msg=lambda m, k=key: f'{k}: {m}')
