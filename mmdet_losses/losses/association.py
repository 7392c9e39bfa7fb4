"""Registered association losses of multi-object tracking (QDTrack); the maths lives in
:mod:`mmdet_losses.functional.association`."""
from ..functional import association as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['MultiPosCrossEntropyLoss']


@MODELS.register_module()
class MultiPosCrossEntropyLoss(BaseLoss):
    """QDTrack's multi-positive cross-entropy, mmdet's ``MultiPosCrossEntropyLoss`` (see
    :func:`mmdet_losses.functional.multi_pos_cross_entropy_loss`): per row of similarities,
    ``log(1 + sum_{p, n} exp(s_n - s_p))`` over its positives p and negatives n.

    Example:
        >>> loss = MultiPosCrossEntropyLoss()
        >>> pred = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
        >>> loss(pred, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
        tensor(0.2952)
    """

    inputs = ('pred: similarity logits (N, M); target: (N, M), 1 positive, 0 negative, '
              'other values ignored')

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.multi_pos_cross_entropy_loss(pred, target, weight, reduction, avg_factor,
                                              **kwargs)
