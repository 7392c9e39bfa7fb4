"""Input checks and small helpers shared by the classification losses (no public losses here).

Label-range checks read tensor values, so they run only for CPU tensors, where reading costs no
host synchronisation; on an accelerator an out-of-range label is not checked (it then fails
inside the indexing op, or, for sigmoid losses, a label above C counts as background).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validation import check_numbers, check_tensor, reads_values

__all__ = []


def check_scores(pred: Tensor, name: str = 'pred', *, dims: Tuple[int, ...] = (2,)) -> Tensor:
    """Raise unless ``pred`` is a floating tensor with one of ``dims`` dimensions."""
    check_tensor(name, pred, floating=True)
    if pred.dim() not in dims:
        want = ' or '.join(f'{d}-D' for d in dims)
        raise ValueError(f'{name} must be {want} class scores (N, C), got shape '
                         f'{tuple(pred.shape)}')
    if pred.shape[1] == 0:
        raise ValueError(f'{name} must have at least one class (N, C) with C >= 1, got shape '
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
    ``like``'s dtype and device; a wrong length, NaN or inf is a ValueError, a complex value a
    TypeError."""
    if value is None:
        return None
    check_numbers(name, value)
    vector = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if vector.dim() != 1 or vector.numel() != num_classes:
        raise ValueError(f'{name} must have one value per class ({num_classes}), got shape '
                         f'{tuple(vector.shape)}')
    return vector


def check_binary_labels(name: str, target: Tensor) -> Tensor:
    """Binary labels in {0, 1} or {-1, 1} as signs: +1 for 1, -1 for 0 and -1.

    Other values are a ValueError (checked on CPU tensors)."""
    check_tensor(name, target)
    if reads_values(target) and target.numel() > 0:
        valid = (target == 0) | (target == 1) | (target == -1)
        if not bool(valid.all()):
            raise ValueError(f'{name} must hold binary labels in {{0, 1}} or {{-1, 1}}, got '
                             f'{target[~valid][0].item()}')
    return torch.where(target > 0, 1.0, -1.0)


def check_unit_interval(name: str, values: Tensor, *,
                        ignore_index: Optional[int] = None) -> None:
    """Raise a ValueError naming ``name`` unless every finite value of ``values`` (dense,
    one-hot or soft targets, IoU scores) is in [0, 1]; an integer tensor must then hold 0 and 1
    only. ``ignore_index`` (an ignored element) passes too. NaN and +-inf pass: they give a
    non-finite loss, as any non-finite input does. Read on CPU tensors only, not while
    compiling (no host sync)."""
    if values.dtype == torch.bool or not reads_values(values) or values.numel() == 0:
        return
    values = values.detach()
    low, high = torch.aminmax(values)  # one pass; the common case ends here
    if bool(high <= 1) and bool(low >= 0):
        return
    bad = (values > 1) | (values < 0)
    if values.is_floating_point():
        bad &= torch.isfinite(values)
    if ignore_index is not None:
        bad &= values != ignore_index
    if bool(bad.any()):
        extra = '' if ignore_index is None else f' (or ignore_index={ignore_index})'
        if values.is_floating_point():
            want = f'values in [0, 1]{extra}'
        else:
            want = (f'0 or 1{extra} as integer targets of pred\'s shape (class indices have '
                    f'one dimension fewer than pred)')
        raise ValueError(f'{name} must hold {want}, got {values[bad][0].item()}')


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
