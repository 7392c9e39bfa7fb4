"""IoU-family losses against mmdet's classes of the same name, on decoded xyxy boxes as
mmdet's heads with ``reg_decoded_bbox=True`` pass them: pred (N, 4) requiring grad, target
(N, 4), a per-box weight (N,) and an ``avg_factor``."""
import torch

from . import BenchCase, leaf, mmdet, ours


def _random_boxes(n, gen):
    """Valid xyxy boxes in an 800 x 800 image, sides 1 to 200."""
    xy = torch.rand(n, 2, generator=gen) * 800
    wh = 1 + torch.rand(n, 2, generator=gen) * 199
    return torch.cat((xy, xy + wh), dim=1)


def _box_pairs(size, device, dtype):
    """``size`` box pairs: targets, and predictions that are the targets with every side moved
    by up to a third of the box size (so IoUs spread over (0, 1], some above CIoU's gate)."""
    gen = torch.Generator().manual_seed(0)
    target = _random_boxes(size, gen)
    wh = (target[:, 2:] - target[:, :2]).repeat(1, 2)
    pred = target + (torch.rand(size, 4, generator=gen) - 0.5) * (2 / 3) * wh
    pred = torch.cat((torch.minimum(pred[:, :2], pred[:, 2:]),
                      torch.maximum(pred[:, :2], pred[:, 2:])), dim=1)
    weight = torch.rand(size, generator=gen)
    return ([leaf(pred.to(device, dtype)), target.to(device, dtype)],
            dict(weight=weight.to(device, dtype), avg_factor=float(size)))


_PAIRS = [
    ('IoULoss', dict(mode='linear'), dict(mode='linear')),
    ('GIoULoss', {}, {}),
    ('DIoULoss', {}, {}),
    ('CIoULoss', {}, {}),
    ('SIoULoss', {}, dict(neg_gamma=True)),  # the paper's sign, as ours
]

CASES = [
    BenchCase(name, ours(name, **ours_kw), _box_pairs, (1_000_000,),
              reference=mmdet(name, **ref_kw), reference_name=f'mmdet.{name}',
              unit='box pairs')
    for name, ours_kw, ref_kw in _PAIRS
]
