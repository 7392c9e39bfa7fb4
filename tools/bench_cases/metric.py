"""Metric-learning losses. TripletLoss (batch-hard) against mmdet's ``TripletLoss``
(``mmdet/models/losses/triplet_loss.py``, a Python loop over anchors); the others alone.
The size is the batch of embeddings N, of dimension 256 (a ReID head's width), in P classes
of 4 samples (PK sampling)."""
import torch

from . import BenchCase, leaf, mmdet, ours

FEAT_DIM = 256
PER_CLASS = 4


def _embeddings(size, device, dtype):
    gen = torch.Generator().manual_seed(0)
    embeddings = torch.randn(size, FEAT_DIM, generator=gen).to(device, dtype)
    labels = (torch.arange(size) // PER_CLASS)[torch.randperm(size, generator=gen)]
    return [leaf(embeddings), labels.to(device)], {}


CASES = [
    # mmdet's loop takes tens of seconds per run at N=1024: ask for it with --sizes
    BenchCase('TripletLoss', ours('TripletLoss', margin=0.3), _embeddings, (64, 256),
              reference=mmdet('TripletLoss', margin=0.3), reference_name='mmdet.TripletLoss',
              unit='embeddings'),
    BenchCase('TripletLoss-batch_all', ours('TripletLoss', margin=0.3, mining='batch_all'),
              _embeddings, (64, 256), unit='embeddings'),
    BenchCase('ContrastiveLoss', ours('ContrastiveLoss', margin=1.0), _embeddings,
              (64, 256, 1024), unit='embeddings'),
    BenchCase('CenterLoss', ours('CenterLoss', num_classes=1024 // PER_CLASS,
                                  feat_dim=FEAT_DIM), _embeddings, (64, 256, 1024),
              unit='embeddings'),
]
