"""Registered tracking losses: ``L2Loss`` and ``MarginL2Loss``, mmdet's classes of those names
(QDTrack's auxiliary track loss); the maths lives in
:mod:`mmdet_losses.functional.tracking`."""
from ..functional import tracking as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['L2Loss', 'MarginL2Loss']


class _MinedL2Loss(BaseLoss):
    """The shared body of mmdet's two tracking L2 losses (same maths, same arguments)."""

    inputs = 'pred: similarities, any shape ((N, M) pairs); target: 1 positive, 0 negative'
    #: read by the drop-in table (docs/dropin.md)
    dropin_note = ("pred and target are not written in place; random negatives are drawn "
                   "with torch's generator on the device (hard mining is identical); a given "
                   "`avg_factor` is used (mmdet's ignores it); reduction 'sum' sums (mmdet's "
                   "raises) (docs/zoo.md).")
    functional = F.margin_l2_loss
    params = ('neg_pos_ub', 'pos_margin', 'neg_margin', 'hard_mining')

    def __init__(self, neg_pos_ub: int = -1, pos_margin: float = -1.0,
                 neg_margin: float = -1.0, hard_mining: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.neg_pos_ub, self.pos_margin, self.neg_margin, hard_mining = \
            F.check_margin_l2_params(neg_pos_ub, pos_margin, neg_margin, hard_mining)
        self.hard_mining = bool(hard_mining)


@MODELS.register_module()
class L2Loss(_MinedL2Loss):
    """mmdet's tracking ``L2Loss`` (not a plain squared error: that is :class:`MSELoss`)::

        t = target where weight > 0, else -1
        s = clamp(pred - pos_margin [t == 1] - neg_margin [t == 0], 0, 1)  (margins if > 0)
        loss = sum(weight (s - t)^2) / #(weight > 0)

    keeping at most ``neg_pos_ub`` negatives per positive (the hardest with ``hard_mining``,
    else a random subset); see :func:`mmdet_losses.functional.margin_l2_loss`. Unlike
    mmdet's, it leaves ``pred`` and ``target`` unmodified (mmdet's writes the margins and the
    -1 into them in place), uses a given ``avg_factor`` (mmdet's ignores it) and sums with
    ``reduction='sum'`` (mmdet's raises).

    Args:
        neg_pos_ub: the most negatives per positive; <= 0 keeps all.
        pos_margin: subtracted from the positives' pred when > 0.
        neg_margin: subtracted from the negatives' pred when > 0.
        hard_mining: keep the hardest negatives instead of random ones.

    Reference: Pang et al., "Quasi-Dense Similarity Learning for Multiple Object Tracking",
    CVPR 2021.

    Example:
        >>> L2Loss()(torch.tensor([[0.9, 0.3, 1.4]]), torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.3667)
    """


@MODELS.register_module()
class MarginL2Loss(_MinedL2Loss):
    """mmdet's ``MarginL2Loss`` (QDTrack's ``loss_track_aux``): the same loss as
    :class:`L2Loss`, which mmdet registers twice (see
    :func:`mmdet_losses.functional.margin_l2_loss`)::

        loss = sum(weight (clamp(pred - margin, 0, 1) - t)^2) / #(weight > 0)

    Args:
        neg_pos_ub: the most negatives per positive; <= 0 keeps all.
        pos_margin: subtracted from the positives' pred when > 0.
        neg_margin: subtracted from the negatives' pred when > 0.
        hard_mining: keep the hardest negatives instead of random ones.

    Reference: Pang et al., "Quasi-Dense Similarity Learning for Multiple Object Tracking",
    CVPR 2021.

    Example:
        >>> loss = MarginL2Loss(neg_pos_ub=1, neg_margin=0.1, hard_mining=True)
        >>> loss(torch.tensor([[0.9, 0.3, 0.6]]), torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.1300)
    """
