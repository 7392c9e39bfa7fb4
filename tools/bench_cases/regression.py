"""Regression losses against mmdet's classes of the same name."""
import torch

from . import BenchCase, leaf, mmdet, ours


def _pred_target(size, device, dtype):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(size // 4, 4, generator=gen).to(device, dtype)
    target = torch.randn(size // 4, 4, generator=gen).to(device, dtype)
    weight = torch.rand(size // 4, 4, generator=gen).to(device, dtype)
    return [leaf(pred), target], dict(weight=weight, avg_factor=float(size // 8))


CASES = [
    BenchCase(name, ours(name, **kw), _pred_target, (100_000, 1_000_000),
              reference=mmdet(name, **kw), reference_name=f'mmdet.{name}')
    for name, kw in [('L1Loss', {}), ('MSELoss', {}), ('SmoothL1Loss', dict(beta=1.0 / 9)),
                     ('BalancedL1Loss', {})]
] + [BenchCase('RMSELoss', ours('RMSELoss'), _pred_target, (100_000, 1_000_000))]
