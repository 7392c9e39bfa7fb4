"""Inputs of the mmdet-zoo losses (DiceLoss, GaussianFocalLoss, KnowledgeDistillationKLDivLoss,
BoundedIoULoss, L2Loss, MarginL2Loss) for the contract test modules (``from _zoo_inputs
import ...``): builders ``(generator, n) -> (pred, target, weight)`` and half-sensitive
probes ``() -> (pred, target, weight)`` for tests/test_contract.py, and the per-module input
tables of the other contract modules."""
import torch

from _helpers import jittered_boxes

C = 3


# ------------------------------------------------------------ tests/test_contract.py CASES
def build_masks(gen, n):
    """Mask logits (n, 4) and binary masks, per-mask weights."""
    return (torch.randn(n, 4, generator=gen) * 2,
            (torch.rand(n, 4, generator=gen) > 0.5).float(), 0.5 + torch.rand(n, generator=gen))


def probe_masks():
    # soft mask values that round to 1 and 0 in both half types
    pred = torch.tensor([[3.0, -2.0, 0.5, 1.0], [-1.0, 2.0, 0.25, -3.0]])
    target = torch.tensor([[0.9999, 1e-4, 0.9997, 0.0], [0.9998, 1.0, 2e-4, 0.0]])
    return pred, target, torch.full((2,), 1 / 3)


def build_heatmap(gen, n):
    """Probabilities (n, C) away from 0 and 1, a Gaussian heatmap with a peak of 1 per row."""
    pred = torch.sigmoid(torch.randn(n, C, generator=gen) * 2).clamp(1e-3, 1 - 1e-3)
    target = torch.rand(n, C, generator=gen) * 0.95
    if n:
        target[torch.arange(n), torch.arange(n) % C] = 1.0
    return pred, target, 0.5 + torch.rand(n, C, generator=gen)


def probe_heatmap():
    # 0.9999 rounds to 1.0 in half: it would turn into a positive
    pred = torch.tensor([[0.5, 0.1, 0.9], [0.3, 0.7, 0.2]])
    target = torch.tensor([[1.0, 0.9999, 0.5], [0.9997, 0.0, 1.0]])
    return pred, target, torch.full((2, C), 1 / 3)


def build_box_pairs(gen, n):
    """Boxes and a (n, 4) weight, as mmdet's heads pass to BoundedIoULoss."""
    pred, target = jittered_boxes(gen, n)
    return pred, target, 0.5 + torch.rand(n, 4, generator=gen)


def probe_box_pairs():
    pred = torch.tensor([[1000.0, 1000.0, 1010.0, 1020.0], [996.0, 1004.0, 1024.0, 1040.0],
                         [-1000.0, 2000.0, -992.0, 2016.0]])
    offsets = torch.tensor([[0.3, -0.2, 0.45, 0.1], [-0.35, 0.15, 0.3, -0.3],
                            [0.2, 0.4, -0.1, 0.35]])
    return pred, pred + offsets, torch.full((3, 4), 1 / 3)


def build_similarities(gen, n):
    """Similarities in (0.05, 0.95) (away from the clamp), 0/1 targets, positive weights."""
    return (0.05 + 0.9 * torch.rand(n, C, generator=gen),
            (torch.rand(n, C, generator=gen) > 0.6).float(), 0.5 + torch.rand(n, C, generator=gen))


def probe_similarities():
    pred = torch.tensor([[0.3, 0.7, 0.2], [0.9, 0.15, 0.55]])
    return pred, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]), torch.full((2, C), 1 / 3)


def build_corner_embeddings(gen, n):
    """Top-left and bottom-right corner embeddings of n objects of one image (means within
    the push margin of each other), per-object weights."""
    pred = torch.randn(n, generator=gen) * 0.6
    return pred, pred + torch.randn(n, generator=gen) * 0.3, 0.5 + torch.rand(n, generator=gen)


def probe_corner_embeddings():
    # 1000.3 rounds to 1000.5 (float16) and 1000 (bfloat16): the pull term would change
    pred = torch.tensor([1000.0, 996.0, 1000.5])
    return pred, pred + torch.tensor([0.3, -0.2, 0.45]), torch.full((3,), 1 / 3)


def zoo_cases(Case, build_kl, probe_kl):
    """The rows of tests/test_contract.py CASES."""
    return [
        Case('DiceLoss', build_masks, probe_masks, domain=(0.0, 1.0)),
        Case('DiceLoss', build_masks, probe_masks, dict(naive_dice=True, eps=1.0),
             variant='naive', domain=(0.0, 1.0)),
        Case('GaussianFocalLoss', build_heatmap, probe_heatmap, domain=(0.0, 1.0)),
        Case('KnowledgeDistillationKLDivLoss', build_kl, probe_kl, dict(T=2.0)),
        Case('BoundedIoULoss', build_box_pairs, probe_box_pairs),
        Case('L2Loss', build_similarities, probe_similarities),
        Case('MarginL2Loss', build_similarities, probe_similarities,
             dict(neg_pos_ub=1, neg_margin=0.1, pos_margin=0.05, hard_mining=True),
             variant='hard-mining'),
    ]


#: mmdet's tracking L2 losses read weight <= 0 as "ignore this element" (target -1, not
#: counted), so a negated weight is not the negated loss there.
WEIGHT_SIGN_MATTERS = ('L2Loss', 'MarginL2Loss')


# ------------------------------------------------- tests/test_contract_errors.py BUILDERS
def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


ERROR_BUILDERS = {
    'DiceLoss': ({}, lambda: (torch.randn(3, 4, generator=_gen()),
                              (torch.rand(3, 4, generator=_gen(1)) > 0.5).float())),
    'GaussianFocalLoss': ({}, lambda: (torch.rand(3, 4, generator=_gen()),
                                       torch.rand(3, 4, generator=_gen(1)))),
    'KnowledgeDistillationKLDivLoss': ({}, lambda: (torch.randn(3, 4, generator=_gen()),
                                                    torch.randn(3, 4, generator=_gen(1)))),
    'BoundedIoULoss': ({}, lambda: jittered_boxes(_gen(), 3)),
    'L2Loss': ({}, lambda: (torch.rand(3, 4, generator=_gen()),
                            (torch.rand(3, 4, generator=_gen(1)) > 0.5).float())),
    'MarginL2Loss': ({'neg_pos_ub': 1, 'hard_mining': True},
                     lambda: (torch.rand(3, 4, generator=_gen()),
                              (torch.rand(3, 4, generator=_gen(1)) > 0.5).float())),
    'AssociativeEmbeddingLoss': ({}, lambda: (torch.randn(3, generator=_gen()),
                                              torch.randn(3, generator=_gen(1)))),
}


# ------------------------------------ tests/test_contract_nan_dtype.py sweep (plain path)
def nan_sweep_builders():
    """name -> [(ctor, pred, target, weight, pred index, output index)]."""
    gen = torch.Generator().manual_seed(5)
    logits = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    unit = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    masks = lambda *shape: (unit(*shape) > 0.5).float()  # noqa: E731
    heat = unit(3, 4) * 0.9
    heat[1, 2] = 1.0
    pred, target = jittered_boxes(gen, 3)
    boxes = [({}, pred, target, unit(3, 4) + 0.5, (1, k), (1,)) for k in range(4)]
    return {
        'DiceLoss': [({}, logits(3, 4), masks(3, 4), unit(3) + 0.5, (1, 2), (1,)),
                     (dict(naive_dice=True), logits(3, 4), masks(3, 4), unit(3) + 0.5, (1, 2),
                      (1,))],
        'GaussianFocalLoss': [({}, unit(3, 4) * 0.9 + 0.05, heat, unit(3, 4) + 0.5, (1, 2),
                               (1, 2))],
        'KnowledgeDistillationKLDivLoss': [({}, logits(3, 4), logits(3, 4), unit(3) + 0.5,
                                            (1, 2), (1,))],
        'BoundedIoULoss': boxes,
        'L2Loss': [({}, unit(3, 4), masks(3, 4), unit(3, 4) + 0.5, (1, 2), (1, 2))],
        'MarginL2Loss': [(dict(neg_pos_ub=1, hard_mining=True, neg_margin=0.1), unit(3, 4),
                          masks(3, 4), unit(3, 4) + 0.5, (1, 2), (1, 2))],
        'AssociativeEmbeddingLoss': [({}, logits(4) * 0.5, logits(4) * 0.5, unit(4) + 0.5,
                                      (1,), (1,))],
    }


# ---------------------------------- tests/test_contract_double_backward.py CASES (float64)
def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def _mask_logits():
    pred = _f64(0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 1.5, -0.8).reshape(2, 4)
    return pred, (_f64(1, 0, 1, 0, 0, 1, 1, 0).reshape(2, 4),)


def _heatmap():
    pred = _f64(0.62, 0.13, 0.35, 0.81, 0.27, 0.55).reshape(2, 3)
    return pred, (_f64(1.0, 0.4, 0.1, 0.7, 0.2, 1.0).reshape(2, 3),)


def _teacher():
    pred = _f64(0.3, -1.2, 2.0, 0.7, -0.4, 1.1).reshape(2, 3)
    return pred, (_f64(1.0, 0.2, -0.5, -1.3, 0.9, 0.4).reshape(2, 3),)


def _box_pairs():
    # each of the 12 terms away from beta = 0.2 and from the clamp at 0
    pred = _f64(0.0, 0.0, 2.0, 3.0, 1.0, 1.5, 4.0, 3.5, 2.0, 0.5, 3.2, 2.9).reshape(3, 4)
    target = _f64(0.5, 0.4, 2.6, 2.7, 0.7, 1.0, 3.3, 4.1, 2.4, 0.2, 3.9, 2.2).reshape(3, 4)
    return pred, (target,)


def _similarities():
    pred = _f64(0.3, 0.7, 0.2, 0.9, 0.15, 0.55).reshape(2, 3)
    return pred, (_f64(1, 0, 0, 1, 0, 1).reshape(2, 3),)


def _corner_embeddings():
    # object means 0.4, -0.25, 0.8, 0.15: no pair 0 or 1 (the margin) apart, off the kinks
    return _f64(0.3, -0.4, 0.9, 0.1), (_f64(0.5, -0.1, 0.7, 0.2),)


DOUBLE_BACKWARD_CASES = {
    'DiceLoss': [({}, _mask_logits, 'vnet'), (dict(naive_dice=True, eps=1.0), _mask_logits,
                                              'naive')],
    'GaussianFocalLoss': [({}, _heatmap, 'default'), (dict(alpha=1.5, gamma=2.0), _heatmap,
                                                      'alpha1.5')],
    'KnowledgeDistillationKLDivLoss': [(dict(T=2.0), _teacher, 'T2')],
    'BoundedIoULoss': [({}, _box_pairs, 'default')],
    'L2Loss': [({}, _similarities, 'default')],
    'MarginL2Loss': [(dict(neg_pos_ub=1, neg_margin=0.1, hard_mining=True), _similarities,
                      'hard')],
    'AssociativeEmbeddingLoss': [(dict(pull_weight=0.5, push_weight=1.5), _corner_embeddings,
                                  'default')],
}
