"""Input checks and small helpers shared by the classification losses (no public losses here).

Label-range checks read tensor values, so they run only for CPU tensors, where reading costs no
host synchronisation; on an accelerator an out-of-range label is not checked (it then fails
inside the indexing op, or, for sigmoid losses, a label above C counts as background).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validation import check_tensor

__all__ = []


def check_scores(pred: Tensor, name: str = 'pred', *, dims: Tuple[int, ...] = (2,)) -> Tensor:
    """Raise unless ``pred`` is a floating tensor with one of ``dims`` dimensions."""
    check_tensor(name, pred, floating=True)
    if pred.dim() not in dims:
        want = ' or '.join(f'{d}-D' for d in dims)
        raise ValueError(f'{name} must be {want} class scores (N, C), got shape '
                         f'{tuple(pred.shape)}')
    return pred


def is_index_target(pred: Tensor, target: Tensor) -> bool:
    """True for class-index targets (one dimension fewer than ``pred``), False for dense targets
    of ``pred``'s shape; anything else is a ValueError naming both shapes."""
    check_tensor('target', target)
    if target.shape == pred.shape:
        return False
    if target.dim() == pred.dim() - 1 and target.shape == pred.shape[:1] + pred.shape[2:]:
        return True
    raise ValueError(f'target must have the shape of pred {tuple(pred.shape)} (one-hot or soft '
                     f'targets) or {tuple(pred.shape[:1] + pred.shape[2:])} (class indices), '
                     f'got {tuple(target.shape)}')


def check_class_vector(name: str, value, num_classes: int, like: Tensor) -> Optional[Tensor]:
    """``value`` (None, a sequence or a tensor of ``num_classes`` numbers) as a tensor in
    ``like``'s dtype and device; a wrong length is a ValueError."""
    if value is None:
        return None
    vector = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if vector.dim() != 1 or vector.numel() != num_classes:
        raise ValueError(f'{name} must have one value per class ({num_classes}), got shape '
                         f'{tuple(vector.shape)}')
    return vector


def check_binary_labels(name: str, target: Tensor) -> Tensor:
    """Binary labels in {0, 1} or {-1, 1} as signs: +1 for 1, -1 for 0 and -1.

    Other values are a ValueError (checked on CPU tensors)."""
    check_tensor(name, target)
    if target.device.type == 'cpu' and target.numel() > 0:
        valid = (target == 0) | (target == 1) | (target == -1)
        if not bool(valid.all()):
            raise ValueError(f'{name} must hold binary labels in {{0, 1}} or {{-1, 1}}, got '
                             f'{target[~valid][0].item()}')
    return torch.where(target > 0, 1.0, -1.0)


def per_anchor_weight(weight: Optional[Tensor], loss_shape: torch.Size) -> Optional[Tensor]:
    """Give an (N,) per-sample weight of an (N, C, ...) loss the shape (N, 1, ...), and a
    flattened per-element weight (N*C,) the loss's shape, as mmdet's focal losses accept both.
    Other shapes pass through and must broadcast to the loss."""
    if weight is None or len(loss_shape) < 2 or weight.shape == loss_shape:
        return weight
    check_tensor('weight', weight)
    rows = loss_shape[0]
    if weight.dim() == 1 and weight.numel() == rows:
        return weight.view((rows,) + (1,) * (len(loss_shape) - 1))
    if weight.dim() == 1 and weight.numel() == loss_shape.numel():
        return weight.view(loss_shape)
    return weight
