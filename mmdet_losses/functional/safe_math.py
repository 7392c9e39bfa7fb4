"""Powers whose gradient stays finite at 0, and the NaN marker, shared by the loss families.

They keep the contract "NaN or inf in, non-finite out": a NaN (or -inf) goes through
:func:`safe_pow` as NaN, with a NaN gradient, and :func:`with_nonfinite` and
:func:`nan_if_nonfinite` let a loss whose maths would hide a non-finite input (a clamp, a
``torch.where`` on a comparison, a max, a detached target, ``exp(-inf) = 0``) show it, at the
price of a few element-wise operations and without any host synchronisation.
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['safe_pow', 'safe_sqrt', 'nonfinite_marker', 'with_nonfinite', 'nan_if_nonfinite']


def safe_pow(x: Tensor, power: float) -> Tensor:
    """``x ** power`` for x > 0 and 0 for finite x <= 0, with a zero gradient at 0 where the
    plain power's would be infinite (power < 1) and turn into NaN through the chain rule.

    A non-finite x is not mapped to 0: NaN and -inf give NaN (with a NaN gradient), +inf
    gives ``inf ** power``.

    Example:
        >>> from mmdet_losses.functional.safe_math import safe_pow
        >>> x = torch.tensor([0.0, 4.0, float('nan')], requires_grad=True)
        >>> y = safe_pow(x, 0.5)
        >>> y
        tensor([0., 2., nan], grad_fn=<...>)
        >>> y.sum().backward()
        >>> x.grad
        tensor([0.0000, 0.2500,    nan])
    """
    keep = (x > 0) | ~torch.isfinite(x)
    return torch.where(keep, torch.where(keep, x, torch.ones_like(x)).pow(power),
                       torch.zeros_like(x))


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 (the subgradient of |d| at d = 0); NaN
    stays NaN (value and gradient).

    Example:
        >>> from mmdet_losses.functional.safe_math import safe_sqrt
        >>> safe_sqrt(torch.tensor([0.0, 9.0, float('nan')]))
        tensor([0., 3., nan])
    """
    return safe_pow(x, 0.5)


def _zero_or_nan(tensors, dim):
    """``sum_i (x_i - x_i)`` over the (broadcast) floating tensors, summed over ``dim``; None
    when no tensor is floating."""
    z = None
    for x in tensors:
        if x is None or not x.is_floating_point():
            continue
        z = x - x if z is None else z + (x - x)
    if z is not None and dim is not None:
        z = z.sum(dim)
    return z


def nonfinite_marker(*tensors: Optional[Tensor], dim=None) -> Tensor:
    """``z^2`` with ``z = sum_i (x_i - x_i)`` over the (broadcast) tensors: exactly 0 with
    exactly a zero gradient (for each x_i) where every x_i is finite, NaN with a NaN gradient
    (for each x_i) where one is NaN or +-inf. The square carries the NaN of ``x - x`` into
    the gradient (``x - x`` alone has a zero one), and its backward multiplies the incoming
    gradient by ``2 z = 0``, so a NaN or inf weight that multiplies the loss reaches the
    gradient of x as NaN even where the loss's own gradient is 0. It never overflows:
    ``x - x`` is 0 for every finite x. With ``dim`` (an int or a tuple, as for
    ``Tensor.sum``), z is summed over it before squaring (a box's 4 coordinates, the classes
    of a per-sample loss), so one non-finite entry makes the gradient of its whole row NaN.
    None and non-floating tensors (class indices) are skipped.

    Added to a loss (:func:`with_nonfinite`), it makes the loss of an element with a
    non-finite input non-finite even where the loss's own maths (a clamp, a ``torch.where``
    on a comparison, a max, a detached target) would hide it.

    Example:
        >>> from mmdet_losses.functional.safe_math import nonfinite_marker
        >>> x = torch.tensor([[1e38, 0.0], [float('inf'), 2.0]], requires_grad=True)
        >>> m = nonfinite_marker(x, dim=1)
        >>> m
        tensor([0., nan], grad_fn=<...>)
        >>> m.sum().backward(); x.grad
        tensor([[0., 0.],
                [nan, nan]])
    """
    z = _zero_or_nan(tensors, dim)
    if z is None:
        raise TypeError('nonfinite_marker needs at least one floating-point tensor')
    return z * z


def with_nonfinite(loss: Tensor, *tensors: Optional[Tensor], dim=None,
                   mask: Optional[Tensor] = None) -> Tensor:
    """``loss + nonfinite_marker(*tensors, dim=dim)`` with the tensors cast to loss's dtype
    (None and non-floating tensors, such as class indices, are skipped; none left: ``loss``
    unchanged). ``mask`` (a bool tensor broadcasting to the loss) limits the marker to the
    elements where it is True (ignored samples, whose pred the loss does not read).

    Example:
        >>> from mmdet_losses.functional.safe_math import with_nonfinite
        >>> pred = torch.tensor([5.0, float('-inf')], requires_grad=True)
        >>> loss = with_nonfinite(pred.clamp(min=0), pred)  # the clamp alone hides -inf
        >>> loss
        tensor([5., nan], grad_fn=<...>)
        >>> loss.sum().backward(); pred.grad
        tensor([1., nan])
    """
    z = _zero_or_nan(tuple(None if t is None else t.to(loss.dtype) for t in tensors), dim)
    if z is None:
        return loss
    if mask is not None:
        z = torch.where(mask, z, torch.zeros_like(z))
    return torch.addcmul(loss, z, z)


def _row_zero_or_nan(x: Tensor, dim: int) -> Tensor:
    """0 for each slice of x along ``dim`` whose values are all finite, NaN otherwise.

    Over the last dim of a float32/float64 tensor it is one matrix-vector product with the
    vector of the smallest normal number: every product of a finite value is at most about 4
    in magnitude (``max * tiny``), so a row sum overflows for no finite row, while a NaN or
    +-inf propagates (one BLAS pass, several times faster than a row-wise reduction over a
    short last dim). Elsewhere ``(x - x).sum(dim)``."""
    last = dim == -1 or dim == x.dim() - 1
    if last and x.dtype in (torch.float32, torch.float64):
        tiny = x.new_full((x.shape[-1],), torch.finfo(x.dtype).tiny)
        s = torch.matmul(x, tiny)
        return s - s
    return (x - x).sum(dim)


def nan_if_nonfinite(loss: Tensor, *tensors: Optional[Tensor], dim: Optional[int] = None,
                     mask: Optional[Tensor] = None) -> Tensor:
    """``loss * f`` with ``f`` (no gradient) 1 where the inputs of an element are finite and
    NaN where one is NaN or +-inf: the value is exact elsewhere, and the gradient that reaches
    the loss's own backward is NaN for those elements. Cheaper than :func:`with_nonfinite`
    (nothing to differentiate), but it relies on the loss's backward multiplying its incoming
    gradient (as log-softmax, BCE and products do; a relu or clamp backward would drop the
    NaN where inactive): the contract tests check every loss that uses it.

    A tensor with as many dims as ``loss`` is compared element-wise (broadcast); one with more
    is reduced over ``dim`` (the class dim of a per-sample loss) in one pass that cannot
    overflow (:func:`_row_zero_or_nan`). None and non-floating tensors are skipped. ``mask`` (bool,
    broadcasting to the loss) limits it to the elements where it is True (ignored samples,
    whose pred the loss does not read).

    Example:
        >>> from mmdet_losses.functional.safe_math import nan_if_nonfinite
        >>> logits = torch.tensor([[0.0, float('-inf')], [0.0, 1.0]], requires_grad=True)
        >>> loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]),
        ...                                          reduction='none')
        >>> loss  # exp(-inf) = 0 hides the -inf
        tensor([-0.0000, 1.3133], grad_fn=<...>)
        >>> out = nan_if_nonfinite(loss, logits, dim=1)
        >>> out
        tensor([   nan, 1.3133], grad_fn=<...>)
        >>> out.sum().backward(); logits.grad
        tensor([[    nan,     nan],
                [-0.7311,  0.7311]])
    """
    z = None
    with torch.no_grad():
        for x in tensors:
            if x is None or not x.is_floating_point():
                continue
            x = x.detach()
            if x.dim() > loss.dim():
                if x.shape[dim] == 0:
                    continue
                part = _row_zero_or_nan(x, dim)
            else:
                part = x - x
            z = part if z is None else z + part
        if z is None:
            return loss
        if mask is not None:
            z = torch.where(mask, z, torch.zeros_like(z))
        factor = (z + 1).to(loss.dtype)
    return loss * factor
