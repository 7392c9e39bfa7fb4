"""Classification losses against mmdet's classes of the same name. FocalLoss is the issue's
speed target: 80 classes, class-index targets (label 80 = background), per-anchor weights and
avg_factor, as RetinaNet calls it; on CPU mmdet then takes its one-hot py_sigmoid_focal_loss
path."""
import torch

from . import BenchCase, leaf, mmdet, ours

NUM_CLASSES = 80


def _anchors(size, device, dtype):
    """RetinaNet-like: ~1% positives, the rest background, all anchors weighted 1."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(size, NUM_CLASSES, generator=gen) * 2 - 3
    labels = torch.full((size,), NUM_CLASSES, dtype=torch.long)
    positive = torch.rand(size, generator=gen) < 0.01
    labels[positive] = torch.randint(0, NUM_CLASSES, (int(positive.sum()),), generator=gen)
    weight = torch.ones(size)
    return ([leaf(pred.to(device, dtype)), labels.to(device)],
            dict(weight=weight.to(device, dtype), avg_factor=float(max(int(positive.sum()), 1))))


def _iou_targets(size, device, dtype):
    args, kwargs = _anchors(size, device, dtype)
    pred, labels = args
    gen = torch.Generator().manual_seed(1)
    target = torch.zeros(size, NUM_CLASSES + 1)
    target[torch.arange(size), labels.cpu()] = torch.rand(size, generator=gen)
    return [pred, target[:, :NUM_CLASSES].to(device, dtype)], dict(avg_factor=kwargs['avg_factor'])


def _quality_targets(size, device, dtype):
    args, kwargs = _anchors(size, device, dtype)
    pred, labels = args
    scores = torch.rand(size, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    return [pred, (labels, scores)], kwargs


def _rois(size, device, dtype):
    """Faster R-CNN's bbox head: softmax over 80 classes + background."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(size, NUM_CLASSES + 1, generator=gen)
    labels = torch.randint(0, NUM_CLASSES + 1, (size,), generator=gen)
    return ([leaf(pred.to(device, dtype)), labels.to(device)],
            dict(weight=torch.ones(size).to(device, dtype), avg_factor=float(size)))


CASES = [
    BenchCase('FocalLoss', ours('FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
              _anchors, (100_000,), reference=mmdet('FocalLoss', use_sigmoid=True, gamma=2.0,
                                                     alpha=0.25),
              reference_name='mmdet.FocalLoss', unit='anchors x 80 classes'),
    BenchCase('VarifocalLoss', ours('VarifocalLoss', use_sigmoid=True), _iou_targets,
              (100_000,), reference=mmdet('VarifocalLoss', use_sigmoid=True),
              reference_name='mmdet.VarifocalLoss', unit='anchors x 80 classes'),
    BenchCase('QualityFocalLoss', ours('QualityFocalLoss', use_sigmoid=True),
              _quality_targets, (100_000,),
              reference=mmdet('QualityFocalLoss', use_sigmoid=True),
              reference_name='mmdet.QualityFocalLoss', unit='anchors x 80 classes'),
    BenchCase('CrossEntropyLoss', ours('CrossEntropyLoss'), _rois, (100_000,),
              reference=mmdet('CrossEntropyLoss'), reference_name='mmdet.CrossEntropyLoss',
              unit='RoIs x 81 classes'),
    BenchCase('BinaryCrossEntropyLoss', ours('BinaryCrossEntropyLoss'), _anchors,
              (100_000,), reference=mmdet('CrossEntropyLoss', use_sigmoid=True),
              reference_name='mmdet.CrossEntropyLoss(use_sigmoid)',
              unit='anchors x 80 classes'),
]
