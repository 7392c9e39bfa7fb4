"""Registered losses of dense maps: ``DiceLoss`` (masks) and ``GaussianFocalLoss``
(keypoint heatmaps), drop-ins for mmdet's classes of those names; the maths lives in
:mod:`mmdet_losses.functional.dense`."""
from typing import Optional

from torch import Tensor

from ..functional import dense as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['DiceLoss', 'GaussianFocalLoss']


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be a bool, got {type(value).__name__} {value!r}')
    return value


@MODELS.register_module()
class DiceLoss(BaseLoss):
    """Dice loss per mask, mmdet's ``DiceLoss`` (Mask2Former, MaskFormer, SOLO, RTMDet-Ins;
    see :func:`mmdet_losses.functional.dice_loss`)::

        p = sigmoid(pred) if activate else pred
        1 - 2 sum(p t) / (sum(p^2) + sum(t^2) + 2 eps)      (V-Net)
        1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)    (naive_dice=True)

    Called as mmdet's: ``loss(pred, target, weight=None, reduction_override=None,
    avg_factor=None)``, with a per-mask ``weight`` (N,).

    Args:
        use_sigmoid: the activation is the sigmoid; False only with ``activate=False``
            (mmdet's raises NotImplementedError at the first call; this refuses it at
            construction).
        activate: apply the sigmoid to ``pred`` (False: pred are probabilities).
        naive_dice: the first-power denominator instead of the V-Net squares.
        eps: the smoothing term, >= 0.

    Reference: Milletari et al., "V-Net: Fully Convolutional Neural Networks for Volumetric
    Medical Image Segmentation", 3DV 2016.

    Example:
        >>> loss = DiceLoss(naive_dice=True, eps=1.0)
        >>> loss(torch.tensor([[10.0, -10.0, 10.0]]), torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.2500)
    """

    inputs = ('pred: mask logits (probabilities if activate=False) (N, ...); target: masks '
              'of its shape in [0, 1]')
    #: read by the drop-in table (docs/dropin.md); docs/zoo.md says more
    dropin_note = ("`use_sigmoid=False` with `activate=True` is a ValueError at construction "
                   "(mmdet's raises NotImplementedError at the first call); targets must lie "
                   "in [0, 1]; an infinite logit gives NaN for its mask (docs/zoo.md).")
    functional = F.dice_loss
    params = ('activate', 'naive_dice', 'eps')

    def __init__(self, use_sigmoid: bool = True, activate: bool = True,
                 reduction: str = 'mean', naive_dice: bool = False, loss_weight: float = 1.0,
                 eps: float = 1e-3):
        super().__init__(reduction, loss_weight)
        self.use_sigmoid = _flag('use_sigmoid', use_sigmoid)
        self.activate, self.naive_dice, self.eps = F.check_dice_params(activate, naive_dice,
                                                                       eps)
        if activate and not use_sigmoid:
            raise ValueError('use_sigmoid must be True when activate=True: the sigmoid is the '
                             "one activation DiceLoss applies (mmdet's raises "
                             'NotImplementedError), got use_sigmoid=False')

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                reduction_override: Optional[str] = None, avg_factor=None) -> Tensor:
        """mmdet's argument order: ``weight``, ``reduction_override``, ``avg_factor``."""
        return super().forward(pred, target, weight=weight, avg_factor=avg_factor,
                               reduction_override=reduction_override)



@MODELS.register_module()
class GaussianFocalLoss(BaseLoss):
    """Focal loss against a Gaussian heatmap, mmdet's ``GaussianFocalLoss`` (CornerNet,
    CenterNet; see :func:`mmdet_losses.functional.gaussian_focal_loss`)::

        pos_weight * -log(p) (1 - p)^alpha [t == 1]
          + neg_weight * -log(1 - p) p^alpha (1 - t)^gamma

    ``pred`` are probabilities (the heads apply the sigmoid). mmdet's CenterNet-update form
    passes the positives as ``pos_inds=``, ``pos_labels=`` (keywords, as mmdet's heads do;
    the positional order is the package's: ``weight``, ``avg_factor``,
    ``reduction_override``). A positional integer tensor in weight's place is refused.

    Args:
        alpha: power of the prediction's modulating factor, >= 0.
        gamma: power of the negatives' ``1 - t`` factor, >= 0.
        pos_weight: factor of the positive term.
        neg_weight: factor of the negative term.

    Reference: Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018.

    Example:
        >>> loss = GaussianFocalLoss()
        >>> loss(torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 0.5]]), avg_factor=1)
        tensor(0.1744)
    """

    inputs = ('pred: probabilities in [0, 1], any shape ((N, C) with pos_inds); target: '
              'Gaussian heatmap of its shape, 1 at positives')
    #: read by the drop-in table (docs/dropin.md); docs/zoo.md says more
    dropin_note = ("`pos_inds` and `pos_labels` are keyword arguments, as mmdet's heads pass "
                   "them (positionally, `weight` follows `target`); with `pos_inds`, "
                   "reduction 'none' returns the (N, C) map of both terms and `weight` is "
                   "refused (mmdet's ignores it); pred and target must lie in [0, 1] "
                   "(docs/zoo.md).")
    functional = F.gaussian_focal_loss
    params = ('alpha', 'gamma', 'pos_weight', 'neg_weight')

    def __init__(self, alpha: float = 2.0, gamma: float = 4.0, reduction: str = 'mean',
                 loss_weight: float = 1.0, pos_weight: float = 1.0, neg_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.alpha, self.gamma, self.pos_weight, self.neg_weight = \
            F.check_gaussian_focal_params(alpha, gamma, pos_weight, neg_weight)

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None,
                pos_inds: Optional[Tensor] = None,
                pos_labels: Optional[Tensor] = None) -> Tensor:
        """``pos_inds`` (M,) and ``pos_labels`` (M,): the positives of an (N, C) pred."""
        if isinstance(weight, Tensor) and not weight.is_floating_point() \
                and not weight.is_complex():
            raise TypeError(f'weight must be a floating-point tensor, got dtype {weight.dtype} '
                            '(pass pos_inds and pos_labels as keywords)')
        return super().forward(pred, target, weight, avg_factor, reduction_override,
                               pos_inds=pos_inds, pos_labels=pos_labels)
