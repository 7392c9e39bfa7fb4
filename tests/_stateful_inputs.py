"""Inputs of the re-weighting losses with state (Seesaw, GHM-C, GHM-R, EQLv2) and QDTrack's
multi-positive cross-entropy for tests/test_contract.py's CASES: each builder gives float32
(pred, target, weight) of a valid call, each probe inputs exactly representable in half."""
import torch

C = 3  # classes (without the background)


def build_seesaw(gen, n):
    return (torch.randn(n, C + 2, generator=gen) * 2, torch.randint(0, C + 1, (n,), generator=gen),
            0.5 + torch.rand(n, generator=gen))


def probe_seesaw():
    pred = torch.tensor([[10.0, -10.0, 0.5, 2.0, -1.0], [-2.0, 3.0, 1.0, -0.5, 0.25]])
    return pred, torch.tensor([0, 3]), torch.full((2,), 1 / 3)


def build_index(gen, n):
    return (torch.randn(n, C, generator=gen) * 2, torch.randint(0, C + 1, (n,), generator=gen),
            0.5 + torch.rand(n, generator=gen))


def probe_index():
    return torch.tensor([[10.0, -10.0, 0.5], [-2.0, 3.0, 1.0]]), torch.tensor([0, 2]), \
        torch.full((2,), 1 / 3)


def build_eqlv2(gen, n):
    return (torch.randn(n, C + 1, generator=gen) * 2, torch.randint(0, C + 1, (n,), generator=gen),
            0.5 + torch.rand(n, generator=gen))


def probe_eqlv2():
    pred = torch.tensor([[10.0, -10.0, 0.5, 2.0], [-2.0, 3.0, 1.0, -0.5]])
    return pred, torch.tensor([0, 3]), torch.full((2,), 1 / 3)


def build_similarity(gen, n):
    target = (torch.rand(n, 4, generator=gen) > 0.5).float()
    target[:, 0] = 1.0  # one positive and one negative per row at least
    target[:, 1] = 0.0
    return torch.randn(n, 4, generator=gen) * 2, target, 0.5 + torch.rand(n, generator=gen)


def probe_similarity():
    pred = torch.tensor([[10.0, -10.0, 0.5, 2.0], [-2.0, 3.0, 1.0, -0.5]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    return pred, target, torch.full((2,), 1 / 3)


def build_binary(gen, n):
    return (torch.randn(n, C, generator=gen) * 2,
            (torch.rand(n, C, generator=gen) > 0.6).float(), 0.5 + torch.rand(n, C, generator=gen))


def probe_binary():
    pred = torch.tensor([[10.0, -10.0, 4.0], [10.0, 10.0, -4.0]])
    return pred, torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]), torch.full((2, C), 1 / 3)


def build_regression(gen, n):
    return (torch.randn(n, 4, generator=gen) * 0.05, torch.randn(n, 4, generator=gen) * 0.05,
            0.5 + torch.rand(n, 4, generator=gen))


def probe_regression():
    pred = torch.tensor([[0.125, -0.0625, 0.5, 0.0], [1.0, -0.25, 0.03125, 0.0078125]])
    return pred, torch.zeros(2, 4), torch.full((2, 4), 1 / 3)


def stateful_cases(Case):
    """The Case rows (the contract's checks cover the state too: a non-finite batch leaves
    every buffer as it was)."""
    return [
        # the compensation factor is detached (as in the paper and mmdet): no gradcheck
        Case('SeesawLoss', build_seesaw, probe_seesaw, dict(num_classes=C, return_dict=False),
             detached=True),
        Case('GHMC', build_index, probe_index, dict(momentum=0.75), variant='index'),
        Case('GHMC', build_binary, probe_binary, dict(bins=5), variant='binary',
             domain=(0.0, 1.0)),
        Case('GHMR', build_regression, probe_regression, dict(momentum=0.75)),
        Case('EQLV2Loss', build_eqlv2, probe_eqlv2, dict(num_classes=C)),
        Case('MultiPosCrossEntropyLoss', build_similarity, probe_similarity),
    ]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------- tests/test_contract_errors.py BUILDERS
# p = 0 and momentum = 0: no state, so that calling one module twice gives one value
ERROR_BUILDERS = {
    'SeesawLoss': ({'num_classes': C, 'return_dict': False, 'p': 0.0},
                   lambda: (torch.randn(3, C + 2, generator=_gen()), torch.tensor([0, 2, 3]))),
    'GHMC': ({}, lambda: (torch.randn(3, C, generator=_gen()), torch.tensor([0, 2, 3]))),
    # gamma = 0: every weight is sigmoid(0) = 0.5, whatever the statistics
    'EQLV2Loss': ({'num_classes': C, 'gamma': 0.0},
                  lambda: (torch.randn(3, C + 1, generator=_gen()), torch.tensor([0, 2, 3]))),
    'MultiPosCrossEntropyLoss': ({}, lambda: (torch.randn(3, 4, generator=_gen()),
                                              torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0],
                                                            [1, 1, 0, 0]]))),
    'GHMR': ({}, lambda: (torch.randn(3, 4, generator=_gen()) * 0.05,
                                          torch.randn(3, 4, generator=_gen(1)) * 0.05)),
}


# ------------------------------------ tests/test_contract_nan_dtype.py sweep (plain path)
def nan_sweep_builders():
    """name -> [(ctor, pred, target, weight, pred index, output index)]."""
    gen = _gen(5)
    logits = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    unit = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    labels = torch.tensor([0, 1, 3])
    return {
        'SeesawLoss': [(dict(num_classes=C, return_dict=False), logits(3, C + 2), labels,
                        unit(3) + 0.5, (1, 2), (1,)),
                       (dict(num_classes=C, return_dict=False), logits(3, C + 2), labels,
                        unit(3) + 0.5, (2, 4), (2,))],
        'GHMC': [(dict(momentum=0.75), logits(3, C), labels, unit(3) + 0.5, (1, 2), (1,)),
                 ({}, logits(3, C), (unit(3, C) > 0.5).float(), unit(3, C) + 0.5, (1, 2),
                  (1, 2))],
        'GHMR': [(dict(momentum=0.75), logits(3, 4) * 0.05, logits(3, 4) * 0.05,
                  unit(3, 4) + 0.5, (1, 2), (1, 2))],
        'EQLV2Loss': [(dict(num_classes=C), logits(3, C + 1), labels, unit(3) + 0.5, (1, 2),
                       (1,))],
        'MultiPosCrossEntropyLoss': [({}, logits(3, 4), torch.tensor([[1.0, 0, 0, 1],
                                                                      [0, 1, 0, 0],
                                                                      [1, 1, 0, 0]]),
                                      unit(3) + 0.5, (1, 2), (1,))],
    }


# ---------------------------------- tests/test_contract_double_backward.py CASES (float64)
def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def _seesaw_scores():
    pred = _f64(0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 1.5, -0.8, 0.2, 0.9).reshape(2, 5)
    return pred, (torch.tensor([1, 0]),)


def _ghm_logits():
    pred = _f64(0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 1.5, -0.8, 0.25).reshape(3, 3)
    return pred, (torch.tensor([0, 2, 3]),)


def _ghm_residuals():
    pred = _f64(0.03, -0.012, 0.2, 0.07, -0.04, 0.011, 0.15, -0.08).reshape(2, 4)
    return pred, (torch.zeros(2, 4, dtype=torch.float64),)


DOUBLE_BACKWARD_CASES = {
    # q = 0: the compensation factor is detached (a stop-gradient), the mitigation a constant
    'SeesawLoss': [(dict(num_classes=C, q=0.0, return_dict=False), _seesaw_scores,
                    'mitigation')],
    'GHMC': [(dict(bins=4), _ghm_logits, 'bins4')],
    'GHMR': [(dict(bins=4, mu=0.05), _ghm_residuals, 'bins4')],
    'MultiPosCrossEntropyLoss': [({}, lambda: (_ghm_logits()[0], (_f64(1, 0, 1, 0, 1, 0, 0, 0,
                                                                       1).reshape(3, 3),)),
                                  'default')],
    'EQLV2Loss': [(dict(num_classes=C - 1), lambda: (_ghm_logits()[0], (torch.tensor([0, 2, 1]),)),
                   'default')],
}
