"""Registered metric-learning loss modules; the maths lives in :mod:`mmdet_losses.functional`.

``forward(embeddings, labels, ...)`` is BaseLoss's ``forward(pred, target, ...)``: ``pred`` are
(N, D) embeddings, ``target`` (N,) integer labels.

Under DDP every rank sees only its own part of the batch. CenterLoss needs nothing more: its
centres are parameters, so DDP averages their gradients, and with equal per-rank batch sizes
that average is the gradient of the whole batch. Mining (triplet, contrastive) does depend on
the whole batch: with ``gather_distributed=True`` each rank gathers every rank's embeddings
and labels (every rank must pass the same N), computes the loss of the whole batch, and the
gradient flows back to the local embeddings so that DDP's average equals the gradient one
process would compute on the whole batch.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..functional import metric as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['TripletLoss', 'ContrastiveLoss', 'CenterLoss']


class _AllGather(torch.autograd.Function):
    """Concatenate a tensor along dim 0 over the ranks. Backward: the gradients of the
    concatenation are summed over the ranks and each rank keeps its own slice, i.e. the
    gradient of the sum of every rank's loss with respect to this rank's input."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        ctx.rank, ctx.num = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.num:(ctx.rank + 1) * ctx.num]


def gather_batch(*tensors: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
    """Every rank's tensors concatenated along dim 0 (rank order), gradients flowing back to
    the local ones; unchanged outside torch.distributed or with one process. None stays None.
    Every rank must pass tensors of the same shape."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    return tuple(None if t is None else _AllGather.apply(t) for t in tensors)


class _BatchLoss(BaseLoss):
    """A loss of a whole batch of embeddings, optionally gathered over the DDP ranks: the
    declared functional form called on :meth:`batch`."""

    def __init__(self, gather_distributed: bool = False, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        if not isinstance(gather_distributed, bool):
            raise TypeError(f'gather_distributed must be a bool, '
                            f'got {type(gather_distributed).__name__}')
        self.gather_distributed = gather_distributed

    def batch(self, pred: Tensor, target: Tensor, weight: Optional[Tensor]):
        """(pred, target, weight) of the local batch, or of every rank's if gathering."""
        if not self.gather_distributed:
            return pred, target, weight
        return gather_batch(pred, target, weight)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return self.functional(*self.batch(pred, target, weight), reduction, avg_factor,
                               **self.functional_kwargs(), **kwargs)


@MODELS.register_module()
class TripletLoss(_BatchLoss):
    """Triplet loss mined from the labels of a batch (see
    :func:`mmdet_losses.functional.triplet_loss`): 'batch_hard' takes, per anchor, the
    farthest positive and the nearest negative (Hermans et al. 2017), 'batch_all' every valid
    triplet. For explicit (anchor, positive, negative) triplets use
    :func:`mmdet_losses.functional.triplet_margin_loss`.

    A drop-in for mmdet's ``TripletLoss(margin, loss_weight, hard_mining)`` (as
    ``loss_triplet`` of ``LinearReIDHead``): ``hard_mining=True`` is 'batch_hard',
    ``hard_mining=False`` 'batch_all'. Unlike mmdet's, an anchor whose class has no other
    sample in the batch is left out of the mean instead of taking its own distance (0) as the
    positive one.

    Args:
        margin: >= 0.
        p: the norm order of the distance, >= 1.
        mining: 'batch_hard' or 'batch_all'.
        soft_margin: softplus instead of the hinge.
        normalize: L2-normalise the embeddings first.
        hard_mining: mmdet's flag, see above; None leaves ``mining`` as given.
        gather_distributed: mine over the embeddings of every DDP rank (see the module doc).
        reduction, loss_weight: as every loss.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.5], [0.0, 0.55]])
        >>> TripletLoss(margin=0.3)(x, torch.tensor([0, 0, 1, 1]))
        tensor(0.4125)
    """

    functional = F.triplet_loss
    params = ('margin', 'p', 'mining', 'soft_margin', 'normalize')
    repr_params = (*params, 'gather_distributed')

    def __init__(self, margin: float = 0.3, p: float = 2.0, mining: str = 'batch_hard',
                 soft_margin: bool = False, normalize: bool = False,
                 hard_mining: Optional[bool] = None, gather_distributed: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(gather_distributed, reduction, loss_weight)
        self.margin, self.p, mining = F.check_triplet_params(margin, p, mining)
        if hard_mining is not None:
            if not isinstance(hard_mining, bool):
                raise TypeError(f'hard_mining must be a bool or None, '
                                f'got {type(hard_mining).__name__}')
            implied = 'batch_hard' if hard_mining else 'batch_all'
            if mining != 'batch_hard' and mining != implied:
                raise ValueError(f'hard_mining={hard_mining} means mining={implied!r}, '
                                 f'got mining={mining!r}')
            mining = implied
        self.mining = mining
        self.soft_margin = bool(soft_margin)
        self.normalize = bool(normalize)



@MODELS.register_module()
class ContrastiveLoss(_BatchLoss):
    """Contrastive loss over every pair i < j of a batch (see
    :func:`mmdet_losses.functional.pairwise_contrastive_loss`; explicit pairs:
    :func:`mmdet_losses.functional.contrastive_loss`):
    ``1/2 [y d^2 + (1 - y) max(0, m - d)^2]``, y = 1 where the labels agree.

    Args:
        margin: m >= 0.
        gather_distributed: use the pairs of every DDP rank's embeddings (a per-pair weight
            cannot be gathered and is then refused).
        reduction, loss_weight: as every loss.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.6, 0.8], [0.3, 0.4]])
        >>> ContrastiveLoss(margin=1.0)(x, torch.tensor([0, 0, 1]))
        tensor(0.2500)
    """

    functional = F.pairwise_contrastive_loss
    params = ('margin',)
    repr_params = (*params, 'gather_distributed')

    def __init__(self, margin: float = 1.0, gather_distributed: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(gather_distributed, reduction, loss_weight)
        self.margin = F.check_contrastive_margin(margin)

    def batch(self, pred, target, weight):
        if self.gather_distributed and weight is not None:
            raise ValueError('weight must be None with gather_distributed=True (a per-pair '
                             f'weight cannot be gathered), got shape {tuple(weight.shape)}')
        return super().batch(pred, target, weight)


@MODELS.register_module()
class CenterLoss(BaseLoss):
    """Center loss ``1/2 mean_i ||x_i - c_{y_i}||^2`` (see
    :func:`mmdet_losses.functional.center_loss`). The centres are an ``nn.Parameter``
    (``self.centers``, (num_classes, feat_dim), initialised from N(0, 1)), so the optimiser
    moves them and DDP keeps them equal on every rank; they are saved in checkpoints.

    Wen et al. update the centres by their own rule with a rate alpha; here the optimiser's
    gradient step does it, and the rate is set by giving the centres their own learning rate
    (e.g. ``paramwise_cfg=dict(custom_keys={'centers': dict(lr_mult=...)})``).

    Args:
        num_classes: C >= 1.
        feat_dim: D >= 1.
        reduction, loss_weight: as every loss.

    Example:
        >>> loss = CenterLoss(num_classes=2, feat_dim=2)
        >>> with torch.no_grad():
        ...     _ = loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        >>> loss(torch.tensor([[3.0, 4.0], [1.0, 2.0]]), torch.tensor([0, 1]))
        tensor(6.5000, grad_fn=<...>)
    """

    functional = F.center_loss
    repr_params = ('num_classes', 'feat_dim')

    def __init__(self, num_classes: int, feat_dim: int, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        for name, value in (('num_classes', num_classes), ('feat_dim', feat_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f'{name} must be an int, got {type(value).__name__}')
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        self.num_classes, self.feat_dim = num_classes, feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def functional_kwargs(self) -> dict:
        return {'centers': self.centers}
