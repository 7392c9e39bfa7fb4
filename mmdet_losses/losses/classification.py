"""Registered classification loss modules; the maths lives in :mod:`mmdet_losses.functional`.

mmdet's dense heads size their classifier from ``loss_cls.get('use_sigmoid', False)`` before
the loss is built (C outputs for sigmoid losses, C + 1 for softmax ones), so the sigmoid losses
take ``use_sigmoid=True`` as mmdet's do, and refuse False with a ValueError saying why.
"""
import numbers
from typing import Optional

import torch

from ..functional import classification as F
from ..functional.cls_entropy import (check_effective_beta, check_ignore_index,
                                      check_label_smoothing, check_mask_options,
                                      check_temperature)
from ..functional.cls_margin import check_hinge_params
from ..registry import MODELS
from ..validation import check_number, check_numbers
from .base import BaseLoss

__all__ = ['CrossEntropyLoss', 'BinaryCrossEntropyLoss', 'BalancedCrossEntropyLoss',
           'FocalLoss', 'SoftmaxFocalLoss', 'VarifocalLoss', 'QualityFocalLoss',
           'DistributionFocalLoss', 'LogisticLoss', 'HingeLoss', 'ExponentialLoss', 'KLDivLoss',
           'ZeroOneLoss']


def _require_sigmoid(name: str, use_sigmoid) -> bool:
    if use_sigmoid is not True:
        raise ValueError(f'use_sigmoid must be True: {name} is a sigmoid loss (mmdet heads read '
                         f'use_sigmoid to give the classifier C outputs, not C + 1); for a '
                         f'softmax loss use CrossEntropyLoss or SoftmaxFocalLoss, got '
                         f'{use_sigmoid!r}')
    return True


@MODELS.register_module()
class CrossEntropyLoss(BaseLoss):
    """Softmax cross-entropy, with ``use_sigmoid=True`` the binary (sigmoid) one, with
    ``use_mask=True`` the mask-head one, with the values of mmdet's ``CrossEntropyLoss`` (see
    :func:`mmdet_losses.functional.cross_entropy_loss`).

    Args:
        use_sigmoid: binary cross-entropy with index labels expanded (label C background);
            ``class_weight`` is then the positive weight, as in mmdet.
        use_mask: mmdet's mask-head variant (``loss_mask`` of Mask R-CNN's ``FCNMaskHead``),
            called as ``loss(mask_preds (N, C, H, W), mask_targets (N, H, W), labels (N,))``:
            the third argument is each RoI's class, choosing its channel of the logits (see
            :func:`mmdet_losses.functional.mask_cross_entropy_loss`). As in mmdet: not with
            ``use_sigmoid``, only reduction 'mean', no ``avg_factor``, no ``ignore_index``.
        class_weight: one weight per class.
        ignore_index: label of ignored samples (None: -100); a call may override it.
        avg_non_ignore: 'mean' averages over the non-ignored samples only.
        label_smoothing: as ``torch.nn.functional.cross_entropy`` (softmax only).
        use_soft: mmpretrain's argument: the target must be class probabilities (N, C) (soft
            labels of mixup, cutmix), ``-sum_c class_weight_c y_c log softmax(pred)_c``, which
            the softmax path computes for such targets anyway; class indices are then a
            ValueError. Not with ``use_sigmoid`` or ``use_mask``.

    Example:
        >>> loss = CrossEntropyLoss(loss_weight=2.0)
        >>> loss(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
        tensor(0.8201)
        >>> loss_mask = CrossEntropyLoss(use_mask=True)
        >>> loss_mask(torch.zeros(2, 3, 4, 4), torch.ones(2, 4, 4), torch.tensor([0, 2]))
        tensor([0.6931])
    """

    functional = F.cross_entropy_loss
    params = ('class_weight', 'ignore_index', 'avg_non_ignore', 'label_smoothing',
              'use_sigmoid', 'use_mask')

    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False,
                 class_weight=None, ignore_index: Optional[int] = -100,
                 avg_non_ignore: bool = False, label_smoothing: float = 0.0,
                 reduction: str = 'mean', loss_weight: float = 1.0, use_soft: bool = False):
        super().__init__(reduction, loss_weight)
        if not isinstance(use_soft, bool):
            raise TypeError(f'use_soft must be a bool, got {type(use_soft).__name__}')
        if use_soft and (use_sigmoid or use_mask):
            raise ValueError(f'use_soft=True (soft labels, softmax) excludes use_sigmoid and '
                             f'use_mask, got use_sigmoid={use_sigmoid}, use_mask={use_mask}')
        self.use_soft = use_soft
        if use_mask:
            check_mask_options(use_sigmoid=use_sigmoid, reduction=reduction,
                               ignore_index=ignore_index, label_smoothing=label_smoothing)
        self.use_sigmoid = bool(use_sigmoid)
        self.use_mask = bool(use_mask)
        check_numbers('class_weight', class_weight)
        self.class_weight = class_weight
        self.ignore_index = check_ignore_index(ignore_index)
        self.avg_non_ignore = bool(avg_non_ignore)
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def compute(self, pred, target, weight, reduction, avg_factor, ignore_index=None,
                **kwargs):
        """The declared call, after the ``use_soft`` target check, with the call's
        ``ignore_index`` (if given) instead of the stored one."""
        # (a target or pred that is no real tensor is refused by the functional form)
        if self.use_soft and isinstance(target, torch.Tensor) and not target.is_complex() \
                and isinstance(pred, torch.Tensor) \
                and (not target.is_floating_point() or target.shape != pred.shape):
            raise ValueError(f'target must be class probabilities of pred\'s shape '
                             f'{tuple(pred.shape)} with use_soft=True, got shape '
                             f'{tuple(target.shape)} of dtype {target.dtype}')
        params = self.functional_kwargs()
        if ignore_index is not None:  # a call may override the stored ignore_index
            params['ignore_index'] = ignore_index
        return self.functional(pred, target, weight, reduction, avg_factor, **params, **kwargs)


@MODELS.register_module()
class BinaryCrossEntropyLoss(BaseLoss):
    """Sigmoid binary cross-entropy of logits (N, C) or any shape, with one-hot/soft targets
    or class indices (label C background), see
    :func:`mmdet_losses.functional.binary_cross_entropy_loss`.

    Args:
        use_sigmoid: must be True (read by mmdet's heads).
        pos_weight: a number or C numbers weighting the positive term.
        class_weight: C numbers multiplying each class's loss.
        ignore_index: label of ignored samples.
        avg_non_ignore: 'mean' averages over the non-ignored elements only.

    Example:
        >>> BinaryCrossEntropyLoss()(torch.tensor([[0.0, 2.0]]), torch.tensor([1]))
        tensor(0.4100)
    """

    functional = F.binary_cross_entropy_loss
    params = ('pos_weight', 'class_weight', 'ignore_index', 'avg_non_ignore')

    def __init__(self, use_sigmoid: bool = True, pos_weight=None, class_weight=None,
                 ignore_index: Optional[int] = -100, avg_non_ignore: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.use_sigmoid = _require_sigmoid('BinaryCrossEntropyLoss', use_sigmoid)
        if isinstance(pos_weight, numbers.Number):
            check_number('pos_weight', pos_weight, low=0.0)
        else:
            check_numbers('pos_weight', pos_weight)
        check_numbers('class_weight', class_weight)
        self.pos_weight = pos_weight
        self.class_weight = class_weight
        self.ignore_index = check_ignore_index(ignore_index)
        self.avg_non_ignore = bool(avg_non_ignore)


@MODELS.register_module()
class BalancedCrossEntropyLoss(BaseLoss):
    """Cross-entropy with class weights inversely proportional to class frequency: from
    ``class_counts``, from the effective number of samples with ``beta``, or from the batch;
    ``use_sigmoid=True`` weights positives by the fraction of negatives (see
    :func:`mmdet_losses.functional.balanced_cross_entropy_loss`).

    Args:
        class_counts: samples per class (all > 0).
        beta: effective-number parameter in [0, 1).
        use_sigmoid: the class-balanced binary cross-entropy.
        ignore_index: label of ignored samples.

    Reference: Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019.

    Example:
        >>> loss = BalancedCrossEntropyLoss(class_counts=[3, 1])
        >>> loss(torch.zeros(2, 2), torch.tensor([0, 1]))
        tensor(0.6931)
    """

    inputs = 'pred: logits (N, C); target: class indices (N,)'
    functional = F.balanced_cross_entropy_loss
    params = ('class_counts', 'beta', 'use_sigmoid', 'ignore_index')

    def __init__(self, class_counts=None, beta: Optional[float] = None,
                 use_sigmoid: bool = False, ignore_index: Optional[int] = -100,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        check_numbers('class_counts', class_counts)
        self.class_counts = class_counts
        self.beta = check_effective_beta(beta)
        self.use_sigmoid = bool(use_sigmoid)
        self.ignore_index = check_ignore_index(ignore_index)


@MODELS.register_module()
class FocalLoss(BaseLoss):
    """Sigmoid focal loss with class-index targets (label C background) or one-hot/soft targets
    (see :func:`mmdet_losses.functional.focal_loss`); mmdet's ``FocalLoss`` values, finite
    value and gradient at saturated logits and for gamma < 1.

    Args:
        use_sigmoid: must be True (read by mmdet's heads).
        gamma: focusing parameter >= 0.
        alpha: balance of positives in [0, 1]; < 0 disables it.
        activated: pred are probabilities.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
        >>> loss = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, reduction='sum')
        >>> loss(torch.tensor([[0.0, -2.0], [1.0, 0.0]]), torch.tensor([0, 2]))
        tensor(0.7010)
    """

    functional = F.focal_loss
    params = ('gamma', 'alpha', 'activated')

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25,
                 activated: bool = False, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.use_sigmoid = _require_sigmoid('FocalLoss', use_sigmoid)
        self.gamma = check_number('gamma', gamma, low=0.0)
        self.alpha = check_number('alpha', alpha, high=1.0)
        self.activated = bool(activated)


@MODELS.register_module()
class SoftmaxFocalLoss(BaseLoss):
    """Softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y`` (see
    :func:`mmdet_losses.functional.softmax_focal_loss`); gamma=0, alpha=None is the
    cross-entropy.

    Args:
        gamma: focusing parameter >= 0.
        alpha: None, a number, or one factor per class.
        ignore_index: label of ignored samples.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
        >>> SoftmaxFocalLoss(gamma=1.0)(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
        tensor(0.3466)
    """

    functional = F.softmax_focal_loss
    params = ('gamma', 'alpha', 'ignore_index')

    def __init__(self, gamma: float = 2.0, alpha=None, ignore_index: Optional[int] = -100,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.gamma = check_number('gamma', gamma, low=0.0)
        if isinstance(alpha, numbers.Number):
            check_number('alpha', alpha, low=0.0)
        else:
            check_numbers('alpha', alpha)
        self.alpha = alpha
        self.ignore_index = check_ignore_index(ignore_index)


@MODELS.register_module()
class VarifocalLoss(BaseLoss):
    """Varifocal loss of VFNet, mmdet's values (see
    :func:`mmdet_losses.functional.varifocal_loss`).

    Args:
        use_sigmoid: must be True (read by mmdet's heads).
        alpha: weight of the negatives, >= 0.
        gamma: focusing parameter of the negatives, >= 0.
        iou_weighted: weight positives by their IoU target.

    Reference: Zhang et al., "VarifocalNet: An IoU-aware Dense Object Detector", CVPR 2021.

    Example:
        >>> VarifocalLoss()(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.0]]))
        tensor(0.2383)
    """

    functional = F.varifocal_loss
    params = ('alpha', 'gamma', 'iou_weighted')

    def __init__(self, use_sigmoid: bool = True, alpha: float = 0.75, gamma: float = 2.0,
                 iou_weighted: bool = True, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.use_sigmoid = _require_sigmoid('VarifocalLoss', use_sigmoid)
        self.alpha = check_number('alpha', alpha, low=0.0)
        self.gamma = check_number('gamma', gamma, low=0.0)
        self.iou_weighted = bool(iou_weighted)


@MODELS.register_module()
class QualityFocalLoss(BaseLoss):
    """Quality focal loss of GFL, mmdet's values; target ``(labels, scores)`` or a dense soft
    (N, C) tensor (see :func:`mmdet_losses.functional.quality_focal_loss`).

    Args:
        use_sigmoid: must be True (read by mmdet's heads).
        beta: focusing parameter >= 0.
        activated: pred are probabilities.

    Reference: Li et al., "Generalized Focal Loss", NeurIPS 2020.

    Example:
        >>> target = (torch.tensor([0, 2]), torch.tensor([0.5, 0.0]))
        >>> QualityFocalLoss(beta=2.0)(torch.zeros(2, 2), target)
        tensor(0.2599)
    """

    functional = F.quality_focal_loss
    params = ('beta', 'activated')

    def __init__(self, use_sigmoid: bool = True, beta: float = 2.0, activated: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.use_sigmoid = _require_sigmoid('QualityFocalLoss', use_sigmoid)
        self.beta = check_number('beta', beta, low=0.0)
        self.activated = bool(activated)


@MODELS.register_module()
class DistributionFocalLoss(BaseLoss):
    """Distribution focal loss of GFL, mmdet's values (see
    :func:`mmdet_losses.functional.distribution_focal_loss`).

    Reference: Li et al., "Generalized Focal Loss", NeurIPS 2020.

    Example:
        >>> DistributionFocalLoss()(torch.zeros(1, 4), torch.tensor([1.5]))
        tensor(1.3863)
    """

    functional = F.distribution_focal_loss


@MODELS.register_module()
class LogisticLoss(BaseLoss):
    """Logistic loss ``softplus(-y f)``, y in {0, 1} or {-1, 1} (see
    :func:`mmdet_losses.functional.logistic_loss`).

    Example:
        >>> LogisticLoss()(torch.tensor([0.0, 2.0]), torch.tensor([1, 0]))
        tensor(1.4100)
    """

    functional = F.logistic_loss


@MODELS.register_module()
class HingeLoss(BaseLoss):
    """Hinge loss, binary ``max(0, margin - y f)`` or multi-class Crammer-Singer /
    Weston-Watkins (see :func:`mmdet_losses.functional.hinge_loss`).

    Args:
        margin: >= 0.
        squared: square each hinge term.
        multiclass: 'crammer_singer' or 'weston_watkins'.

    Example:
        >>> HingeLoss(margin=1.0)(torch.tensor([0.5, -2.0]), torch.tensor([1, 0]))
        tensor(0.2500)
    """

    functional = F.hinge_loss
    params = ('margin', 'squared', 'multiclass')

    def __init__(self, margin: float = 1.0, squared: bool = False,
                 multiclass: str = 'crammer_singer', reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.margin, self.multiclass = check_hinge_params(margin, multiclass)
        self.squared = bool(squared)


@MODELS.register_module()
class ExponentialLoss(BaseLoss):
    """Exponential loss ``exp(-y f)``, y in {0, 1} or {-1, 1} (see
    :func:`mmdet_losses.functional.exponential_loss`).

    Example:
        >>> ExponentialLoss(reduction='sum')(torch.tensor([0.0, 1.0]), torch.tensor([1, 1]))
        tensor(1.3679)
    """

    functional = F.exponential_loss


@MODELS.register_module()
class KLDivLoss(BaseLoss):
    """Distillation KL divergence ``T^2 KL(softmax(t/T) || softmax(p/T))`` per sample, the
    teacher's logits detached (see :func:`mmdet_losses.functional.kl_div_loss`).

    Args:
        temperature: T > 0.

    Reference: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.

    Example:
        >>> KLDivLoss(temperature=2.0)(torch.zeros(1, 2), torch.zeros(1, 2))
        tensor(0.)
    """

    functional = F.kl_div_loss
    params = ('temperature',)

    def __init__(self, temperature: float = 1.0, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.temperature = check_temperature(temperature)


@MODELS.register_module()
class ZeroOneLoss(BaseLoss):
    """0-1 loss: the misclassified fraction ('mean'). A value without gradient, for logging
    and comparison only: its result is detached (see
    :func:`mmdet_losses.functional.zero_one_loss`).

    Example:
        >>> ZeroOneLoss()(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([1, 1]))
        tensor(0.5000)
    """

    inputs = 'pred: scores f of any shape; target: labels y in {-1, 1} or {0, 1} of its shape'
    functional = F.zero_one_loss
