"""Functional forms of the losses other OpenMMLab libraries call by names that clash with ours
or have no counterpart here: mmdet's Extended-IoU (its ``EIoULoss``), mmyolo's ``IoULoss``
(``iou_mode``, ``bbox_format``, ``return_iou``) and mmpretrain's ``LabelSmoothLoss``,
``AsymmetricLoss`` and soft cross-entropy.

The box losses are built on :class:`mmdet_losses.boxes.BoxPair`, the geometry core of every
IoU loss; the classification ones on the same reduction (:func:`weight_reduce_loss`) as every
other loss. Each keeps the contract: half precision computed in float32 and returned in the
input dtype, NaN or inf in any input gives a non-finite loss and gradient, bad arguments are a
ValueError/TypeError naming them.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..boxes import BoxPair
from ..reduction import weight_reduce_loss
from ..validation import (check_choice, check_int, check_labels, check_loss_tensors,
                          check_number, check_tensor, compute_dtype)
from .cls_common import check_class_vector, check_scores, check_unit_interval
from .iou import _box_loss, _box_weight, _prepare, _siou, check_eps
from .safe_math import with_nonfinite

__all__ = ['extended_iou_loss', 'yolo_iou', 'yolo_iou_loss', 'soft_cross_entropy_loss',
           'label_smooth_loss', 'asymmetric_loss']

#: mmyolo's IoU modes and box formats ('xywh' there is centre x, centre y, width, height).
YOLO_IOU_MODES = ('ciou', 'giou', 'siou')
YOLO_BOX_FORMATS = {'xyxy': 'xyxy', 'xywh': 'cxcywh'}
LABEL_SMOOTH_MODES = ('original', 'classy_vision', 'multi_label')


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be a bool, got {type(value).__name__} {value!r}')
    return value


# --------------------------------------------------------------------- Extended-IoU (mmdet)
def _extended_iou_element(pair: BoxPair, eps: float, smooth_point: float) -> Tensor:
    """Smooth-EIoU of one pair: the extended IoU ``I_ext / U`` and its smoothed ``1 - .``."""
    # Offsets of the overlap's near (1) and far (2) edges from the enclosing box's near edge;
    # s = far - near is the signed overlap (negative: a gap), P = near + far.
    def offsets(a1, b1, a2, b2):
        lo = torch.minimum(a1, b1)
        near, far = torch.maximum(a1, b1) - lo, torch.minimum(a2, b2) - lo
        return far - near, far + near
    sx, px = offsets(pair.x1a, pair.x1b, pair.x2a, pair.x2b)
    sy, py = offsets(pair.y1a, pair.y1b, pair.y2a, pair.y2b)
    # The overlap's area, extended linearly (and negatively) across a gap, so that disjoint
    # boxes still get a gradient towards each other: equal to mmdet's inclusion-exclusion of
    # four corner rectangles, case by case.
    inter = (torch.relu(sx) * torch.relu(sy) + torch.clamp(sx, max=0) * py
             + torch.clamp(sy, max=0) * px)
    area_a = pair.wa.clamp(min=0) * pair.ha.clamp(min=0)
    area_b = pair.wb.clamp(min=0) * pair.hb.clamp(min=0)
    # well-formed boxes: I_ext <= the overlap <= min(area), so U > 0 and I_ext / U in (-1, 1];
    # the clamps only act on inverted boxes
    union = (area_a + area_b - inter).clamp(min=0) + eps
    loss = 1 - (inter / union).clamp(-1.0, 1.0)
    smooth = loss < smooth_point  # a comparison: no gradient through the branch choice
    return torch.where(smooth, 0.5 * loss.square() / smooth_point, loss - 0.5 * smooth_point)


def check_smooth_point(smooth_point) -> float:
    """:func:`extended_iou_loss`'s ``smooth_point`` checked (> 0)."""
    return check_number('smooth_point', smooth_point, low=0.0, low_open=True)


def extended_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                      reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                      smooth_point: float = 0.1, eps: float = 1e-7) -> Tensor:
    """Smooth Extended-IoU loss (mmdet's ``eiou_loss``; not Efficient-IoU).

    With ``s_x``, ``s_y`` the signed overlaps of the boxes along x and y (negative for a gap)
    and ``P_x``, ``P_y`` the sums of the overlap's edge offsets from the enclosing box's
    left/top edge (``|x1 - x1_gt| + min(x2, x2_gt) - min(x1, x1_gt)``), the extended
    intersection is ``I = relu(s_x) relu(s_y) + min(s_x, 0) P_y + min(s_y, 0) P_x``: the
    overlap where the boxes overlap, negative and linear in the gap where they do not. With
    ``U = A + A_gt - I + eps`` and ``l = 1 - I / U``, the loss is ``l^2 / (2 s)`` for
    ``l < s`` and ``l - s / 2`` above (``s = smooth_point``).

    Args:
        pred, target: boxes (..., 4) in ``box_format``.
        smooth_point: ``s`` > 0, where the loss turns from quadratic to linear.
        eps: added to the union.

    Reference: Peng and Yu, "Extended-IoU Loss: A Systematic IoU-Related Method: Beyond
    Simplified Regression for Better Localization", IEEE TIP 2021.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> extended_iou_loss(pred, torch.tensor([[1.0, 0.0, 3.0, 2.0]]))  # 2/3 - 0.05
        tensor(0.6167)
        >>> gap = torch.tensor([[3.0, 0.0, 5.0, 2.0]])  # I = -1 * (0 + 2), U = 4 + 4 + 2
        >>> extended_iou_loss(pred, gap)  # 1 + 0.2 - 0.05
        tensor(1.1500)
    """
    smooth_point = check_smooth_point(smooth_point)
    eps = check_eps(eps)
    return _box_loss(lambda a, b: None,  # no fused kernel: the plain path
                     lambda pair: _extended_iou_element(pair, eps, smooth_point)
                     + pair.nonfinite,
                     pred, target, weight, reduction, avg_factor, box_format)


# ------------------------------------------------------------------------ mmyolo's IoULoss
def _yolo_similarity(pair: BoxPair, iou_mode: str, eps: float) -> Tensor:
    """mmyolo's ``bbox_overlaps``: CIoU (no gate, ``alpha = v / (1 - IoU + v + eps)`` without
    gradient), GIoU (``eps`` added to the union and the enclosing area) or SIoU (the paper's
    sign, shape exponent 4), clamped to [-1, 1]."""
    if iou_mode == 'ciou':
        sim = pair.ciou(eps, None)
    elif iou_mode == 'giou':
        union = pair.union + eps
        enclose = pair.enclose_w * pair.enclose_h + eps
        sim = pair.inter / union - (enclose - union) / enclose
    else:
        sim = 1 - _siou(pair, eps, 4.0)
    return sim.clamp(-1.0, 1.0) + pair.nonfinite


def check_yolo_params(iou_mode: str, bbox_format: str, eps) -> Tuple[str, float]:
    check_choice('iou_mode', iou_mode, YOLO_IOU_MODES)
    if bbox_format not in YOLO_BOX_FORMATS:
        raise ValueError(f"bbox_format must be 'xywh' (centre x, centre y, w, h, as mmyolo) "
                         f"or 'xyxy', got {bbox_format!r}")
    return YOLO_BOX_FORMATS[bbox_format], check_eps(eps)


def yolo_iou(pred: Tensor, target: Tensor, iou_mode: str = 'ciou', bbox_format: str = 'xywh',
             eps: float = 1e-7) -> Tensor:
    """mmyolo's box similarity (its ``bbox_overlaps``), per aligned pair: see
    :func:`yolo_iou_loss`. Returns (...,) in pred's dtype, differentiable.

    Example:
        >>> yolo_iou(torch.tensor([[1.0, 1.0, 2.0, 2.0]]), torch.tensor([[2.0, 1.0, 2.0, 2.0]]),
        ...          iou_mode='giou')  # centre-size boxes; IoU 1/3, no gap in the hull
        tensor([0.3333])
    """
    box_format, eps = check_yolo_params(iou_mode, bbox_format, eps)
    a, b = _prepare(pred, target, box_format)
    return _yolo_similarity(BoxPair(a, b), iou_mode, eps).reshape(pred.shape[:-1]).to(pred.dtype)


def yolo_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  reduction: str = 'mean', avg_factor=None, iou_mode: str = 'ciou',
                  bbox_format: str = 'xywh', eps: float = 1e-7,
                  return_iou: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """mmyolo's IoU loss, ``1 - IoU_mode`` reduced with ``weight`` (a (..., 4) weight is
    averaged over its last dim) and ``avg_factor`` as every loss here, where ``IoU_mode`` is
    clamped to [-1, 1] and, with ``IoU = inter / (union + eps)``:

    - 'ciou': ``IoU - rho^2 / (c^2 + eps) - alpha v``, ``v = 4 / pi^2 (atan(w_gt / h_gt) -
      atan(w / h))^2``, ``alpha = v / (1 - IoU + v + eps)`` without gradient and without
      mmdet's IoU > 0.5 gate (YOLOv5's CIoU);
    - 'giou': ``IoU - (C - U) / C`` with ``U = union + eps`` and ``C`` the enclosing area
      ``+ eps``;
    - 'siou': the SIoU of :func:`mmdet_losses.functional.siou_loss` (the paper's sign, shape
      exponent 4) as a similarity, ``1 - L_SIoU``.

    Args:
        pred, target: boxes (..., 4): ``bbox_format='xywh'`` is mmyolo's (centre x, centre y,
            width, height), 'xyxy' the corners.
        iou_mode: 'ciou', 'giou' or 'siou'.
        eps: as placed above.
        return_iou: also return the per-box ``IoU_mode`` (...,), with its gradient (YOLOv5's
            head detaches it for the objectness target).

    Returns:
        The loss, or ``(loss, iou)`` with ``return_iou``.

    Reference: Zheng et al., "Enhancing Geometric Factors in Model Learning and Inference for
    Object Detection and Instance Segmentation", IEEE T-CYB 2021 (CIoU, as YOLOv5 uses it).

    Example:
        >>> pred = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> target = torch.tensor([[2.0, 1.0, 2.0, 2.0]])
        >>> loss, iou = yolo_iou_loss(pred, target, return_iou=True)
        >>> loss, iou  # 1 - (1/3 - 1/13): same shapes, v = 0
        (tensor(0.7436), tensor([0.2564]))
    """
    box_format, eps = check_yolo_params(iou_mode, bbox_format, eps)
    check_bool('return_iou', return_iou)
    a, b = _prepare(pred, target, box_format, weight)
    iou = _yolo_similarity(BoxPair(a, b), iou_mode, eps).reshape(pred.shape[:-1])
    loss = weight_reduce_loss(1 - iou, _box_weight(weight, pred), reduction,
                              avg_factor).to(pred.dtype)
    return (loss, iou.to(pred.dtype)) if return_iou else loss


# -------------------------------------------------------------------- mmpretrain's losses
def _class_scores(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                  num_classes: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """pred (N, C) as logits in the compute dtype and target as dense (N, C) in that dtype:
    class indices (N,) or (N, 1) become one-hot, as mmpretrain's ``convert_to_one_hot``."""
    check_scores(pred)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    classes = pred.shape[1]
    if num_classes is not None and num_classes != classes:
        raise ValueError(f'num_classes ({num_classes}) must equal the number of classes of '
                         f'pred {tuple(pred.shape)}')
    dtype = compute_dtype(pred)
    index = target.dim() == 1 or (target.dim() == 2 and target.shape[1] == 1
                                  and not target.is_floating_point() and classes != 1)
    if index:
        labels = check_labels(target.reshape(-1), classes - 1)
        if labels.shape[0] != pred.shape[0]:
            raise ValueError(f'target must hold one class index per row of pred '
                             f'{tuple(pred.shape)}, got shape {tuple(target.shape)}')
        dense = TF.one_hot(labels.long(), classes).to(dtype)
    else:
        if target.shape != pred.shape:
            raise ValueError(f'target must have the shape of pred {tuple(pred.shape)} or be '
                             f'class indices (N,) or (N, 1), got {tuple(target.shape)}')
        dense = target.to(dtype)
    return pred.to(dtype), dense


def _sample_weight(weight: Optional[Tensor], loss: Tensor) -> Optional[Tensor]:
    """A per-sample weight (N,) of an element-wise (N, C) loss as (N, 1), as mmpretrain."""
    if weight is not None and loss.dim() == 2 and weight.dim() == 1:
        check_tensor('weight', weight)
        if weight.shape[0] != loss.shape[0]:
            raise ValueError(f'weight must have one value per sample ({loss.shape[0]}) or the '
                             f'loss shape {tuple(loss.shape)}, got {tuple(weight.shape)}')
        return weight.reshape(-1, 1)
    return weight


def soft_cross_entropy_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                            reduction: str = 'mean', avg_factor=None,
                            class_weight=None) -> Tensor:
    """mmpretrain's soft cross-entropy ``-sum_c w_c y_c log softmax(pred)_c`` per sample (N,),
    for soft labels (mixup, cutmix, label smoothing) that need not sum to 1.

    Args:
        pred: logits (N, C).
        target: class probabilities (N, C), or class indices (N,) (one-hot).
        class_weight: C weights ``w_c``.

    Example:
        >>> soft_cross_entropy_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.5]]))
        tensor(0.6931)
    """
    logits, dense = _class_scores(pred, target, weight)
    class_weight = check_class_vector('class_weight', class_weight, pred.shape[1], logits)
    loss = -dense * TF.log_softmax(logits, dim=1)
    if class_weight is not None:
        loss = loss * class_weight
    # log_softmax turns a -inf logit into a finite 0 term: show it
    loss = with_nonfinite(loss.sum(1), logits, dense, dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def _binary_cross_entropy(logits: Tensor, dense: Tensor, class_weight: Optional[Tensor],
                          pos_weight: Optional[Tensor]) -> Tensor:
    loss = TF.binary_cross_entropy_with_logits(logits, dense, weight=class_weight,
                                               pos_weight=pos_weight, reduction='none')
    return with_nonfinite(loss, logits, dense)


def check_label_smooth_params(label_smooth_val, mode: str, num_classes: Optional[int],
                              use_sigmoid: Optional[bool], pos_weight
                              ) -> Tuple[float, str, Optional[int], bool]:
    """:func:`label_smooth_loss`'s options checked; ``use_sigmoid=None`` resolved (True for
    'multi_label')."""
    smooth = check_number('label_smooth_val', label_smooth_val, low=0.0, high=1.0,
                          high_open=True)
    check_choice('mode', mode, LABEL_SMOOTH_MODES)
    if num_classes is not None:
        num_classes = check_int('num_classes', num_classes)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    if use_sigmoid is None:
        use_sigmoid = mode == 'multi_label'
    check_bool('use_sigmoid', use_sigmoid)
    if pos_weight is not None and not use_sigmoid:
        raise ValueError('pos_weight weights the positive term of the binary cross-entropy: '
                         'it needs use_sigmoid=True, got use_sigmoid=False')
    return smooth, mode, num_classes, use_sigmoid


def label_smooth_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                      reduction: str = 'mean', avg_factor=None, label_smooth_val: float = 0.1,
                      num_classes: Optional[int] = None, use_sigmoid: Optional[bool] = None,
                      mode: str = 'original', class_weight=None, pos_weight=None) -> Tensor:
    """mmpretrain's label-smoothed cross-entropy. The one-hot (or mixed, one-hot-like) target
    ``y`` of K classes is smoothed with ``e = label_smooth_val``:

    - 'original': ``(1 - e) y + e / K``;
    - 'classy_vision': ``(y + e / K) / (1 + e)``;
    - 'multi_label': ``1 - e`` where ``y > 0``, else ``e``;

    then the loss is the soft cross-entropy (:func:`soft_cross_entropy_loss`, per sample) or,
    with ``use_sigmoid``, the binary cross-entropy of logits (per element, weighted by
    ``class_weight`` and ``pos_weight``).

    Args:
        pred: logits (N, K).
        target: class indices (N,) or (N, 1), or one-hot-like (N, K).
        label_smooth_val: ``e`` in [0, 1).
        num_classes: K, must equal pred's; None: pred's.
        use_sigmoid: None: True for 'multi_label', else False.
        mode: 'original', 'classy_vision' or 'multi_label'.
        class_weight: K numbers multiplying each class's loss.
        pos_weight: K numbers weighting the positive term (``use_sigmoid`` only).

    Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
    CVPR 2016.

    Example:
        >>> label_smooth_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0]),
        ...                   label_smooth_val=0.2)  # target (0.9, 0.1)
        tensor(0.3269)
    """
    smooth, mode, num_classes, use_sigmoid = check_label_smooth_params(
        label_smooth_val, mode, num_classes, use_sigmoid, pos_weight)
    logits, dense = _class_scores(pred, target, weight, num_classes)
    if mode != 'multi_label':
        check_unit_interval('target', dense)
    classes = pred.shape[1]
    if mode == 'original':
        smoothed = dense * (1 - smooth) + smooth / classes
    elif mode == 'classy_vision':
        e = smooth / (1 + smooth)
        smoothed = dense * (1 - e) + e / classes
    else:  # NaN > 0 is False: a NaN label would become e; keep it NaN
        smoothed = (torch.where(dense > 0, torch.full_like(dense, 1 - smooth),
                               torch.full_like(dense, smooth)) + (dense - dense))
    if not use_sigmoid:
        return soft_cross_entropy_loss(pred, smoothed, weight, reduction, avg_factor,
                                       class_weight)
    class_weight = check_class_vector('class_weight', class_weight, classes, logits)
    pos_weight = check_class_vector('pos_weight', pos_weight, classes, logits)
    loss = _binary_cross_entropy(logits, smoothed, class_weight, pos_weight)
    return weight_reduce_loss(loss, _sample_weight(weight, loss), reduction,
                              avg_factor).to(pred.dtype)


def _focusing_power(base: Tensor, power: Tensor) -> Tensor:
    """``base ** power`` for base >= 0 and a per-element power >= 0, with a finite gradient
    at ``base = 0`` (0, where the plain power's is infinite or 0 * inf); NaN stays NaN."""
    keep = (base > 0) | ~torch.isfinite(base)
    at_zero = (power == 0).to(base.dtype)  # 0 ** 0 = 1, 0 ** p = 0
    return torch.where(keep, torch.where(keep, base, torch.ones_like(base)).pow(power), at_zero)


def check_asymmetric_params(gamma_pos, gamma_neg, clip, eps,
                            use_sigmoid) -> Tuple[float, float, float, float, bool]:
    """:func:`asymmetric_loss`'s parameters checked."""
    return (check_number('gamma_pos', gamma_pos, low=0.0),
            check_number('gamma_neg', gamma_neg, low=0.0),
            check_number('clip', clip, low=0.0, high=1.0),
            check_number('eps', eps, low=0.0, low_open=True),
            check_bool('use_sigmoid', use_sigmoid))


def asymmetric_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                    reduction: str = 'mean', avg_factor=None, gamma_pos: float = 0.0,
                    gamma_neg: float = 4.0, clip: float = 0.05, use_sigmoid: bool = True,
                    eps: float = 1e-8) -> Tensor:
    """mmpretrain's asymmetric loss (multi-label), per element (N, C). With ``p`` the sigmoid
    (or, ``use_sigmoid=False``, the softmax) of pred, ``y`` the target and
    ``p_m = min(1, 1 - p + clip)`` (``1 - p`` when ``clip = 0``):
    ``p_t = y p + (1 - y) p_m`` and
    ``loss = -(1 - p_t)^(gamma_pos y + gamma_neg (1 - y)) log(max(p_t, eps))``.
    The focusing factor keeps its gradient, as mmpretrain's.

    Args:
        pred: logits (N, C).
        target: 0/1 (or soft) labels (N, C), or class indices (N,) or (N, 1) (one-hot).
        gamma_pos, gamma_neg: the focusing exponents of positives and negatives, >= 0.
        clip: the probability margin shifting negatives, in [0, 1].
        eps: floor of ``p_t`` under the log.

    Reference: Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021.

    Example:
        >>> asymmetric_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]))  # -log(1/2)
        tensor(0.6931)
    """
    gamma_pos, gamma_neg, clip, eps, use_sigmoid = check_asymmetric_params(
        gamma_pos, gamma_neg, clip, eps, use_sigmoid)
    logits, dense = _class_scores(pred, target, weight)
    check_unit_interval('target', dense)
    prob = logits.sigmoid() if use_sigmoid else logits.softmax(dim=1)
    neg = 1 - prob
    if clip > 0:
        neg = (neg + clip).clamp(max=1)
    p_t = dense * prob + (1 - dense) * neg
    power = gamma_pos * dense + gamma_neg * (1 - dense)
    loss = -torch.log(p_t.clamp(min=eps)) * _focusing_power(1 - p_t, power)
    # the clamps and a saturated sigmoid hide an infinite logit; softmax mixes a row
    loss = with_nonfinite(loss, logits, dense) if use_sigmoid else \
        with_nonfinite(loss, logits.sum(1, keepdim=True), dense)
    return weight_reduce_loss(loss, _sample_weight(weight, loss), reduction,
                              avg_factor).to(pred.dtype)
