"""Inputs of V3Det's custom-channel losses for tests/test_contract.py's CASES: float32
(pred, target, weight) of a valid call, the probe exactly representable in half."""
import torch

C = 3  # classes (without the background)


def build_custom(gen, n):
    return (torch.randn(n, C + 1, generator=gen) * 2, torch.randint(0, C + 1, (n,), generator=gen),
            0.5 + torch.rand(n, generator=gen))


def probe_custom():
    pred = torch.tensor([[10.0, -10.0, 0.5, 2.0], [-2.0, 3.0, 1.0, -0.5]])
    return pred, torch.tensor([0, 3]), torch.full((2,), 1 / 3)


def custom_cases(Case):
    return [Case('CrossEntropyCustomLoss', build_custom, probe_custom, dict(num_classes=C)),
            Case('FocalCustomLoss', build_focal, probe_focal, dict(num_classes=C))]


def build_focal(gen, n):
    pred, target, weight = build_custom(gen, n)
    return pred[:, :C], target, weight


def probe_focal():
    pred, target, weight = probe_custom()
    return pred[:, :C], target, weight


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# tests/test_contract_errors.py BUILDERS
ERROR_BUILDERS = {
    'CrossEntropyCustomLoss': ({'num_classes': C},
                               lambda: (torch.randn(3, C + 1, generator=_gen()),
                                        torch.tensor([0, 2, 3]))),
    'FocalCustomLoss': ({'num_classes': C}, lambda: (torch.randn(3, C, generator=_gen()),
                                                     torch.tensor([0, 2, 3]))),
}


def nan_sweep_builders():
    """tests/test_contract_nan_dtype.py: name -> [(ctor, pred, target, weight, pred index,
    output index)]."""
    gen = _gen(5)
    return {'CrossEntropyCustomLoss': [(dict(num_classes=C), torch.randn(3, C + 1, generator=gen),
                                        torch.tensor([0, 1, 3]),
                                        torch.rand(3, generator=gen) + 0.5, (1, 2), (1,))],
            'FocalCustomLoss': [(dict(num_classes=C), torch.randn(3, C, generator=gen),
                                 torch.tensor([0, 1, 3]), torch.rand(3, C, generator=gen) + 0.5,
                                 (1, 2), (1, 2))]}


# tests/test_contract_double_backward.py CASES (float64)
DOUBLE_BACKWARD_CASES = {
    'CrossEntropyCustomLoss': [(dict(num_classes=C), lambda: (
        torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 1.5, -0.8], dtype=torch.float64)
        .reshape(2, 4), (torch.tensor([1, 3]),)), 'default')],
    'FocalCustomLoss': [(dict(num_classes=C), lambda: (
        torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.1], dtype=torch.float64).reshape(2, 3),
        (torch.tensor([1, 3]),)), 'default')],
}
