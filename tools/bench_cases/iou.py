"""IoU-family losses on decoded xyxy boxes as mmdet's heads with ``reg_decoded_bbox=True``
pass them: pred (N, 4) requiring grad, target (N, 4), a per-box weight (N,) and an
``avg_factor``. Against mmdet's class of the same name where mmdet has one; the variants
mmdet lacks (or defines differently: its EIoULoss is Extended-IoU) against our own loss on
its plain PyTorch path, which shows what the fused kernel gains."""
import contextlib

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

# Ours only, with their defaults (and a base that exercises the shared terms).
_UNFUSED = [
    ('EIoULoss', {}),
    ('WIoULoss', {}),
    ('AlphaIoULoss', dict(base='ciou')),
    ('MPDIoULoss', dict(img_size=(1000, 1000))),
    ('InnerIoULoss', dict(base='ciou')),
    ('FocalerIoULoss', dict(base='siou')),
    ('ShapeIoULoss', dict(scale=0.5)),
    ('NWDLoss', {}),
]


@contextlib.contextmanager
def _plain_path():
    """Our IoU-family losses without their fused kernels, for the duration."""
    from mmdet_losses.functional import iou as iou_module
    saved = iou_module.fused_iou_loss, iou_module.fused_variant_loss
    iou_module.fused_iou_loss = iou_module.fused_variant_loss = lambda *args: None
    try:
        yield
    finally:
        iou_module.fused_iou_loss, iou_module.fused_variant_loss = saved


class _Unfused(torch.nn.Module):
    """Our loss ``name`` computed on the plain PyTorch path (its backward is autograd's)."""

    def __init__(self, name: str, **kwargs):
        super().__init__()
        self.loss = ours(name, **kwargs)()

    def forward(self, *args, **kwargs):
        with _plain_path():
            return self.loss(*args, **kwargs)


CASES = [
    BenchCase(name, ours(name, **ours_kw), _box_pairs, (1_000_000,),
              reference=mmdet(name, **ref_kw), reference_name=f'mmdet.{name}',
              unit='box pairs')
    for name, ours_kw, ref_kw in _PAIRS
] + [
    BenchCase(name, ours(name, **kw), _box_pairs, (1_000_000,),
              reference=lambda name=name, kw=kw: _Unfused(name, **kw),
              reference_name='ours, unfused', unit='box pairs')
    for name, kw in _UNFUSED
]
