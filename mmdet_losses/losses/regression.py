"""Registered regression loss modules; the maths lives in :mod:`mmdet_losses.functional`."""
from ..functional import regression as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['L1Loss', 'MSELoss', 'RMSELoss', 'SmoothL1Loss', 'BalancedL1Loss']

SAME_SHAPE_INPUTS = 'pred and target: tensors of one shape, any shape'


@MODELS.register_module()
class L1Loss(BaseLoss):
    """L1 loss ``|pred - target|`` (see :func:`mmdet_losses.functional.l1_loss`).

    Example:
        >>> L1Loss()(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
        tensor(1.5000)
    """

    inputs = SAME_SHAPE_INPUTS
    functional = F.l1_loss


@MODELS.register_module()
class MSELoss(BaseLoss):
    """L2 loss ``(pred - target)^2``; ``reduction='sum'`` is the sum of squared errors.

    Example:
        >>> MSELoss(reduction='sum')(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
        tensor(5.)
    """

    inputs = SAME_SHAPE_INPUTS
    functional = F.mse_loss


@MODELS.register_module()
class RMSELoss(BaseLoss):
    """Root of the reduced squared error, ``sqrt(mean((pred - target)^2))`` by default, with
    a finite gradient at zero residual (see :func:`mmdet_losses.functional.rmse_loss`).

    Example:
        >>> RMSELoss()(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0]))
        tensor(3.5355)
    """

    inputs = SAME_SHAPE_INPUTS
    functional = F.rmse_loss


@MODELS.register_module()
class SmoothL1Loss(BaseLoss):
    """Smooth L1 loss; ``beta=0`` is exactly L1 (see
    :func:`mmdet_losses.functional.smooth_l1_loss`).

    Args:
        beta: where the quadratic part turns linear, >= 0.

    Example:
        >>> SmoothL1Loss(beta=1.0, reduction='sum')(torch.tensor([0.5, 3.0]), torch.zeros(2))
        tensor(2.6250)
    """

    inputs = SAME_SHAPE_INPUTS
    functional = F.smooth_l1_loss
    params = ('beta',)

    def __init__(self, beta: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.beta = F.check_smooth_l1_params(beta)


@MODELS.register_module()
class BalancedL1Loss(BaseLoss):
    """Balanced L1 loss of Libra R-CNN (see :func:`mmdet_losses.functional.balanced_l1_loss`).

    Args:
        alpha: scales the inlier gradient, > 0.
        gamma: the outlier gradient, > 0.
        beta: where inliers end, > 0.

    Example:
        >>> BalancedL1Loss(reduction='none')(torch.tensor([2.0]), torch.tensor([0.0]))
        tensor([2.5786])
    """

    inputs = SAME_SHAPE_INPUTS
    functional = F.balanced_l1_loss
    params = ('alpha', 'gamma', 'beta')

    def __init__(self, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.alpha, self.gamma, self.beta = F.check_balanced_l1_params(alpha, gamma, beta)
