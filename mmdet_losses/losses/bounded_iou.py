"""Registered ``BoundedIoULoss``, mmdet's class of that name (Guided Anchoring's shape
loss); the maths lives in :mod:`mmdet_losses.functional.bounded_iou`."""
from ..functional import bounded_iou as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['BoundedIoULoss']


@MODELS.register_module()
class BoundedIoULoss(BaseLoss):
    """Bounded IoU loss of (x1, y1, x2, y2) boxes: four terms per box, each bounding
    ``1 - IoU`` when only a centre offset or a side differs from the target, smoothed by an L1
    that turns linear at ``beta`` (see :func:`mmdet_losses.functional.bounded_iou_loss`)::

        l_x = 1 - max((w_t - 2|dx|) / (w_t + 2|dx| + eps), 0)
        l_w = 1 - min(w_t / (w_p + eps), w_p / (w_t + eps))     (l_y, l_h likewise)
        loss = 0.5 l^2 / beta if l < beta else l - 0.5 beta

    ``reduction='none'`` returns (n, 4), as mmdet's; ``weight`` broadcasts to it (mmdet's
    heads pass the (n, 4) box weights).

    Args:
        beta: where the smooth L1 turns linear, > 0.
        eps: guards the divisions, >= 0.

    Reference: Tychsen-Smith and Petersson, "Improving Object Localization with Fitness NMS
    and Bounded IoU Loss", CVPR 2018.

    Example:
        >>> loss = BoundedIoULoss(eps=0.0, reduction='sum')
        >>> loss(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[1.0, 0.0, 11.0, 20.0]]))
        tensor(1.2000)
    """

    #: read by the catalogue: a box-regression loss, grouped with the IoU family
    family = 'iou'
    inputs = 'pred and target: boxes (..., 4), x1 y1 x2 y2; the loss is (..., 4)'
    #: read by the drop-in table (docs/dropin.md)
    dropin_note = ("When no weight is positive, the weighted loss (0; zeros for 'none'; NaN "
                   "for a NaN input) instead of mmdet's bare `(pred * weight).sum()` before "
                   "`loss_weight` and the reduction (docs/zoo.md).")
    functional = F.bounded_iou_loss
    params = ('beta', 'eps')

    def __init__(self, beta: float = 0.2, eps: float = 1e-3, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.beta, self.eps = F.check_bounded_iou_params(beta, eps)
