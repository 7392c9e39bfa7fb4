"""Registered losses with the interfaces of other OpenMMLab libraries, under names that do not
clash with ours: mmdet's Extended-IoU (mmdet calls it ``EIoULoss``; ours of that name is
Efficient-IoU), mmyolo's ``IoULoss`` (``YOLOIoULoss``) and mmpretrain's ``LabelSmoothLoss``
and ``AsymmetricLoss``. The maths is in :mod:`mmdet_losses.functional.interfaces`.
"""
import warnings
from numbers import Number
from typing import Optional, Tuple, Union

from torch import Tensor

from ..functional import interfaces as F
from ..registry import MODELS
from ..validation import check_numbers, check_reduction
from .base import BaseLoss
from .iou import _BoxLoss

__all__ = ['ExtendedIoULoss', 'YOLOIoULoss', 'LabelSmoothLoss', 'AsymmetricLoss']


@MODELS.register_module()
class ExtendedIoULoss(_BoxLoss):
    """Smooth Extended-IoU loss, mmdet 3.3's ``EIoULoss`` (same arguments, values and
    gradients) under its own name: our ``EIoULoss`` is Efficient-IoU, and refuses mmdet's
    ``smooth_point`` with a message that names this class. See
    :func:`mmdet_losses.functional.extended_iou_loss`.

    Args:
        smooth_point: > 0, where the loss turns from quadratic to linear in ``1 - IoU_ext``.
        eps: added to the union (mmdet's default 1e-6).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> ExtendedIoULoss()(pred, torch.tensor([[1.0, 0.0, 3.0, 2.0]]))
        tensor(0.6167)
    """

    functional = F.extended_iou_loss
    params = ('smooth_point', 'box_format', 'eps')

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0,
                 smooth_point: float = 0.1, box_format: str = 'xyxy') -> None:
        super().__init__(box_format, eps, reduction, loss_weight)
        self.smooth_point = F.check_smooth_point(smooth_point)


@MODELS.register_module()
class YOLOIoULoss(BaseLoss):
    """mmyolo's ``IoULoss`` (YOLOv5/6/7/8, PPYOLOE, RTMDet in mmyolo), with its arguments and
    defaults: ``loss_weight * weight_reduce_loss(1 - IoU_mode)``, and ``(loss, iou)`` when
    ``return_iou`` (the per-box ``IoU_mode``, with its gradient, for the objectness target of
    YOLOv5's head). See :func:`mmdet_losses.functional.yolo_iou_loss` for the exact CIoU,
    GIoU and SIoU. Registered under its own name because our ``IoULoss`` is mmdet's.

    Unlike mmyolo's, a call whose weights are all <= 0 is not special-cased (mmyolo returns
    the bare 0 there, even with ``return_iou``): the weighted loss is 0 all the same, the
    result keeps its form, and no host synchronisation is needed.

    Args:
        iou_mode: 'ciou' (default), 'giou' or 'siou'.
        bbox_format: 'xywh' (default; mmyolo's: centre x, centre y, width, height) or 'xyxy'.
        eps: mmyolo's default 1e-7.
        return_iou: return ``(loss, iou)`` (mmyolo's default True) or the loss alone.

    Example:
        >>> pred = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> target = torch.tensor([[2.0, 1.0, 2.0, 2.0]])
        >>> YOLOIoULoss()(pred, target)
        (tensor(0.7436), tensor([0.2564]))
    """

    inputs = "pred and target: boxes (..., 4), bbox_format 'xywh' (centre, size) or 'xyxy'"
    functional = F.yolo_iou_loss
    params = ('iou_mode', 'bbox_format', 'eps')
    repr_params = ('iou_mode', 'bbox_format', 'return_iou')

    def __init__(self, iou_mode: str = 'ciou', bbox_format: str = 'xywh', eps: float = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0, return_iou: bool = True):
        super().__init__(reduction, loss_weight)
        _, self.eps = F.check_yolo_params(iou_mode, bbox_format, eps)
        self.iou_mode, self.bbox_format = iou_mode, bbox_format
        self.return_iou = F.check_bool('return_iou', return_iou)

    def _call(self, pred, target, weight, reduction, avg_factor) -> Tuple[Tensor, Tensor]:
        return self.functional(pred, target, weight, reduction, avg_factor,
                               **self.functional_kwargs(), return_iou=True)

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[Number, Tensor]] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """The loss times ``loss_weight``, and the per-box IoU when ``return_iou``."""
        if kwargs:
            raise TypeError(f'YOLOIoULoss.forward got unexpected arguments {sorted(kwargs)}')
        reduction = self.reduction if reduction_override is None else check_reduction(
            reduction_override, 'reduction_override')
        loss, iou = self._call(pred, target, weight, reduction, avg_factor)
        loss = self.loss_weight * loss
        return (loss, iou) if self.return_iou else loss

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return self._call(pred, target, weight, reduction, avg_factor)[0]


@MODELS.register_module()
class LabelSmoothLoss(BaseLoss):
    """mmpretrain's label-smoothed cross-entropy, with its arguments (see
    :func:`mmdet_losses.functional.label_smooth_loss` for the three modes).

    Unlike mmpretrain's, ``num_classes=None`` reads the class count from each call's pred
    instead of fixing it at the first call; a ``pos_weight`` without ``use_sigmoid`` is a
    ValueError instead of being ignored.

    Args:
        label_smooth_val: the smoothing ``e`` in [0, 1).
        num_classes: the class count (checked against pred), or None.
        use_sigmoid: None: True for mode 'multi_label' (binary cross-entropy), else False
            (soft softmax cross-entropy). 'multi_label' with False warns, as mmpretrain.
        mode: 'original', 'classy_vision' or 'multi_label'.
        class_weight: one weight per class.
        pos_weight: one positive weight per class (``use_sigmoid`` only).

    Example:
        >>> LabelSmoothLoss(0.2)(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
        tensor(0.3269)
    """

    inputs = 'pred: logits (N, C); target: class indices (N,) or one-hot-like (N, C)'
    functional = F.label_smooth_loss
    params = ('label_smooth_val', 'num_classes', 'use_sigmoid', 'mode', 'class_weight',
              'pos_weight')
    repr_params = ('label_smooth_val', 'mode', 'use_sigmoid')

    def __init__(self, label_smooth_val: float, num_classes: Optional[int] = None,
                 use_sigmoid: Optional[bool] = None, mode: str = 'original',
                 reduction: str = 'mean', loss_weight: float = 1.0, class_weight=None,
                 pos_weight=None) -> None:
        super().__init__(reduction, loss_weight)
        self.label_smooth_val, self.mode, self.num_classes, self.use_sigmoid = \
            F.check_label_smooth_params(label_smooth_val, mode, num_classes, use_sigmoid,
                                        pos_weight)
        if mode == 'multi_label' and not self.use_sigmoid:
            warnings.warn("LabelSmoothLoss(mode='multi_label') with use_sigmoid=False uses the "
                          "softmax cross-entropy; multi-label tasks want use_sigmoid=True",
                          UserWarning, stacklevel=2)
        check_numbers('class_weight', class_weight)
        check_numbers('pos_weight', pos_weight)
        self.class_weight, self.pos_weight = class_weight, pos_weight



@MODELS.register_module()
class AsymmetricLoss(BaseLoss):
    """mmpretrain's asymmetric loss for multi-label classification, with its arguments and
    defaults (see :func:`mmdet_losses.functional.asymmetric_loss`).

    Args:
        gamma_pos, gamma_neg: focusing exponents of positives and negatives, >= 0.
        clip: probability margin of the negatives, in [0, 1].
        use_sigmoid: sigmoid (default) or softmax probabilities.
        eps: floor of the probability under the log.

    Example:
        >>> # positive: -log 0.5; negative: -(1 - 0.55)^4 log 0.55 (0.5 shifted by clip)
        >>> AsymmetricLoss()(torch.tensor([[0.0, 0.0]]), torch.tensor([[1, 0]]))
        tensor(0.3588)
    """

    inputs = 'pred: logits (N, C); target: 0/1 labels (N, C) or class indices (N,)'
    functional = F.asymmetric_loss
    params = ('gamma_pos', 'gamma_neg', 'clip', 'use_sigmoid', 'eps')
    repr_params = ('gamma_pos', 'gamma_neg', 'clip')

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 reduction: str = 'mean', loss_weight: float = 1.0, use_sigmoid: bool = True,
                 eps: float = 1e-8) -> None:
        super().__init__(reduction, loss_weight)
        self.gamma_pos, self.gamma_neg, self.clip, self.eps, self.use_sigmoid = \
            F.check_asymmetric_params(gamma_pos, gamma_neg, clip, eps, use_sigmoid)
