"""Knowledge distillation with mmdet's ``KnowledgeDistillationKLDivLoss`` convention: the KL
divergence of the student's tempered softmax from the teacher's, averaged (not summed) over
the classes and scaled by T^2. The sum over classes is :func:`mmdet_losses.functional.kl_div_loss`.
"""
from typing import Optional

import torch.nn.functional as TF
from torch import Tensor

from ..reduction import check_weight, weight_reduce_loss
from ..validation import (check_loss_tensors, check_number, check_same_shape, check_tensor,
                          compute_dtype)
from .safe_math import nan_if_nonfinite

__all__ = ['knowledge_distillation_kl_div_loss']


def check_distillation_temperature(T) -> float:
    """:func:`knowledge_distillation_kl_div_loss`'s temperature checked (> 0)."""
    return check_number('T', T, low=0.0, low_open=True)


def knowledge_distillation_kl_div_loss(pred: Tensor, target: Tensor,
                                       weight: Optional[Tensor] = None,
                                       reduction: str = 'mean', avg_factor=None,
                                       T: float = 10.0) -> Tensor:
    """Distillation loss of a student from a teacher, per sample (mmdet's definition)::

        T^2 / C * sum_c q_c (log q_c - log p_c),  q = softmax(target / T),  p = softmax(pred / T)

    the mean over the C classes (dim 1), where :func:`kl_div_loss` sums them. ``target`` (the
    teacher's logits, mmdet's ``soft_label``) is detached, as mmdet's ``detach_target=True``.

    Args:
        pred: student logits (N, C) or (N, C, ...); softmax over dim 1.
        target: teacher logits of pred's shape.
        weight: per-sample weight, broadcastable to the loss (N,) (or (N, ...)).
        T: the temperature, > 0.

    Returns:
        The reduced loss, or the per-sample loss (pred's shape without dim 1).

    Reference: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0]])
        >>> target = torch.tensor([[1.0, 2.0]]).log()  # teacher probabilities 1/3, 2/3
        >>> F.knowledge_distillation_kl_div_loss(pred, target, T=1.0)  # (KL = 0.0566) / 2
        tensor(0.0283)
    """
    T = check_distillation_temperature(T)
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    if pred.dim() < 2 or pred.shape[1] == 0:
        raise ValueError(f'pred must be (N, C, ...) logits with C >= 1, got shape '
                         f'{tuple(pred.shape)}')
    dtype = compute_dtype(pred)
    logits, teacher = pred.to(dtype), target.detach().to(dtype)
    log_p = TF.log_softmax(logits / T, dim=1)
    q = TF.softmax(teacher / T, dim=1)
    loss = TF.kl_div(log_p, q, reduction='none').mean(1) * (T * T)
    # exp(-inf) = 0 would hide a -inf logit: NaN in, NaN out (value and gradient)
    loss = nan_if_nonfinite(loss, logits, teacher, dim=1)
    if weight is not None:
        check_weight(weight, loss)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
