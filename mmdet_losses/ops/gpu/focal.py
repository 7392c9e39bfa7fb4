"""The sigmoid focal loss as Triton kernels: the CUDA implementations of
``torch.ops.mmdet_losses.sigmoid_focal_loss_index`` (class-index targets, label C is
background) and ``sigmoid_focal_loss_soft`` (one-hot or soft targets of pred's shape), and of
their backward operators (:mod:`mmdet_losses.ops.focal_kernel`).

Each function takes the CPU operator's arguments and returns its outputs. One pass over the
logits, no one-hot: the forward writes the weighted element-wise loss, or sums it (each program
its block, in float64, into a buffer that ``torch.sum`` adds in a fixed order: deterministic,
no atomics, as the CPU kernel's double sums per block), and, when the logits need a gradient,
writes the weighted gradient in the same pass (the backward then only scales it). The
backward kernel recomputes that gradient times ``grad_output`` (one value or one per element).

The maths is that of the CPU kernel (``csrc/focal/focal_math.h``) and of the plain path
(:func:`mmdet_losses.functional.focal_loss`). Index targets: an element is scored with
``z = x`` as a negative and ``z = -x`` as a positive, ``scale sigmoid(z)^gamma softplus(z)``
with the derivative ``scale s^gamma (gamma (1 - s) softplus(z) + s)`` in z, ``s = sigmoid(z)``
and ``1 - s = sigmoid(-z)`` (no cancellation, no negative power of s: finite for every logit and
every gamma >= 0). Soft targets t: ``alpha_t q^gamma ce`` with ``q = p (1 - t) + (1 - p) t``,
``ce`` the cross-entropy with logits, and the analytic derivative of the plain path's
``_SigmoidFocalTerm``. A NaN or infinite logit (or soft target) gives a NaN loss and gradient
(``x - x`` added, as the plain path's NaN marker). gamma 0, 1, 2 and 3 are products, any other
``exp(gamma log s)`` (a branch on a scalar argument: one compiled kernel for every gamma). On
the GPU ``exp`` and ``log1p`` are libdevice's (accurate; ``tl.exp`` is the fast approximation);
in Triton's interpreter they are numpy's (``log1p`` by ``log(1 + y)`` with the rounding of
``1 + y`` corrected).
"""
import contextlib
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .elementwise import as_dtype_of, exp, log1p, store_loss

__all__ = ['focal_forward', 'focal_backward', 'focal_soft_forward', 'focal_soft_backward',
           'compile_specs']

#: Elements (anchor, class) per program; the reduced forward sums each block in float64.
BLOCK = 1024
#: Loss modes of the kernels: no loss (the backward), element-wise, summed per block.
_NO_LOSS, _ELEMENTWISE, _SUM = 0, 1, 2
#: gamma values computed as products; any other by exp(gamma log s).
_INTEGER_GAMMAS = (0, 1, 2, 3)
_GENERAL_GAMMA = -1


@triton.jit
def _power(base, log_base, gamma, gamma_kind):
    """base^gamma for base >= 0: products for an integer gamma (``gamma_kind`` 0 to 3; a
    branch on a scalar, the same for every element), else (-1) exp(gamma log base)."""
    if gamma_kind == 0:
        power = tl.full(base.shape, 1.0, base.dtype)  # 0^0 = 1, as torch.pow
    elif gamma_kind == 1:
        power = base
    elif gamma_kind == 2:
        power = base * base
    elif gamma_kind == 3:
        power = base * base * base
    else:
        power = exp(as_dtype_of(gamma, base) * log_base)
    return power


@triton.jit
def _positions(pid, n, cols, BLOCK: tl.constexpr):
    """Flat offsets (int64), mask, row and column of a block of the (rows, cols) layout. The
    division is done once per program in int64 and per element in int32 on small numbers."""
    start = pid.to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    first_row = start // cols
    local = (start - first_row * cols).to(tl.int32) + tl.arange(0, BLOCK)
    cols32 = cols.to(tl.int32)
    row = first_row + (local // cols32).to(tl.int64)
    col = local % cols32
    return offs, offs < n, row, col


@triton.jit(do_not_specialize=['cols'])
def _focal_index_kernel(x_ptr, labels_ptr, w_ptr, w_row_stride, w_col_stride, has_weight,
                        go_ptr, go_stride, loss_ptr, grad_ptr, n, cols, gamma: tl.float64,
                        neg_alpha: tl.float64, pos_alpha: tl.float64, gamma_kind,
                        LOSS: tl.constexpr, GRAD: tl.constexpr, BLOCK: tl.constexpr):
    """LOSS: 0 none, 1 the weighted loss into loss_ptr (n,), 2 its float64 sum per block into
    loss_ptr[program]. GRAD: the weighted gradient into grad_ptr, times grad_output (go_ptr,
    go_stride 0 for one value) when LOSS is 0 (the backward)."""
    pid = tl.program_id(0)
    offs, mask, row, col = _positions(pid, n, cols, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    label = tl.load(labels_ptr + row, mask=mask, other=-1)
    w = tl.load(w_ptr + row * w_row_stride + col * w_col_stride, mask=mask & has_weight,
                other=1.0)
    positive = col.to(tl.int64) == label  # label C (background) matches no column
    z = tl.where(positive, -x, x)
    scale = tl.where(positive, as_dtype_of(pos_alpha, x), as_dtype_of(neg_alpha, x))
    poison = x - x  # NaN for a NaN or infinite logit
    nonneg = z >= 0.0
    e = exp(-tl.abs(z))
    inv = 1.0 / (1.0 + e)
    s = tl.where(nonneg, inv, e * inv)  # sigmoid(z)
    s_c = tl.where(nonneg, e * inv, inv)  # sigmoid(-z) = 1 - s
    log_term = log1p(e)
    softplus = tl.maximum(z, 0.0) + log_term  # softplus(z) = -log(1 - s)
    log_s = -(tl.maximum(-z, 0.0) + log_term)
    factor = scale * _power(s, log_s, gamma, gamma_kind)
    if LOSS != 0:
        store_loss((factor * softplus + poison) * w, loss_ptr, pid, offs, mask, LOSS == 2)
    if GRAD:
        dz = factor * (as_dtype_of(gamma, x) * s_c * softplus + s) + poison
        grad = w * tl.where(positive, -dz, dz)
        if LOSS == 0:
            grad = grad * tl.load(go_ptr + offs * go_stride, mask=mask, other=0.0)
        tl.store(grad_ptr + offs, grad, mask=mask)


@triton.jit(do_not_specialize=['cols'])
def _focal_soft_kernel(x_ptr, t_ptr, w_ptr, w_row_stride, w_col_stride, has_weight, go_ptr,
                       go_stride, loss_ptr, grad_ptr, n, cols, gamma: tl.float64,
                       alpha: tl.float64, has_alpha, gamma_kind, LOSS: tl.constexpr,
                       GRAD: tl.constexpr, BLOCK: tl.constexpr):
    """The soft-target loss, with LOSS and GRAD as in :func:`_focal_index_kernel`."""
    pid = tl.program_id(0)
    offs, mask, row, col = _positions(pid, n, cols, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    t = tl.load(t_ptr + offs, mask=mask, other=0.0)
    w = tl.load(w_ptr + row * w_row_stride + col * w_col_stride, mask=mask & has_weight,
                other=1.0)
    poison = (x - x) + (t - t)  # NaN for a NaN or infinite logit or target
    nonneg = x >= 0.0
    e = exp(-tl.abs(x))
    inv = 1.0 / (1.0 + e)
    p = tl.where(nonneg, inv, e * inv)  # sigmoid(x)
    p_c = tl.where(nonneg, e * inv, inv)  # sigmoid(-x) = 1 - p
    # torch's binary_cross_entropy_with_logits: (1 - t) x - logsigmoid(x)
    ce = (1.0 - t) * x - (tl.minimum(x, 0.0) - log1p(e))
    q = p * (1.0 - t) + p_c * t  # 1 - p_t
    alpha_x = as_dtype_of(alpha, x)
    alpha_t = tl.where(has_alpha, alpha_x * t + (1.0 - alpha_x) * (1.0 - t), 1.0)
    positive_q = q > 0.0
    safe_q = tl.where(positive_q, q, 1.0)
    # pow(0, gamma) = 0 for gamma > 0 (exp(gamma log 1) = 1 otherwise, where q = 0)
    q_gamma = tl.where(positive_q | (gamma_kind >= 0),
                       _power(q, tl.log(safe_q), gamma, gamma_kind), 0.0)
    factor = alpha_t * q_gamma
    if LOSS != 0:
        store_loss((factor * ce + poison) * w, loss_ptr, pid, offs, mask, LOSS == 2)
    if GRAD:
        r = tl.where(positive_q, p * p_c / safe_q, 1.0)
        p_minus_t = p * (1.0 - t) - p_c * t
        inner = as_dtype_of(gamma, x) * r * (1.0 - 2.0 * t) * ce + p_minus_t
        grad = (factor * inner + poison) * w
        if LOSS == 0:
            grad = grad * tl.load(go_ptr + offs * go_stride, mask=mask, other=0.0)
        tl.store(grad_ptr + offs, grad, mask=mask)


# ------------------------------------------------------------------------------ launching
def _gamma_kind(gamma: float) -> int:
    return int(gamma) if gamma in _INTEGER_GAMMAS else _GENERAL_GAMMA


def _on_device(tensor: Tensor):
    """Launches on ``tensor``'s GPU (Triton launches on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _layout(pred: Tensor, weight: Optional[Tensor]):
    """(cols, weight argument, its row and column strides in the (rows, cols) layout of pred):
    a weight of pred's shape, or (N, 1) per anchor for 2-D logits; none: pred, never read."""
    cols = pred.shape[-1] if pred.dim() > 0 else 1
    if weight is None:
        return cols, pred, 0, 0
    weight = weight.contiguous()
    if weight.shape == pred.shape:
        return cols, weight, cols, 1
    if pred.dim() == 2 and weight.shape == (pred.shape[0], 1):
        return cols, weight, 1, 0
    raise ValueError(f'weight must have shape {tuple(pred.shape)} or ({pred.shape[0]}, 1), got '
                     f'{tuple(weight.shape)}')


def _forward(kernel, pred: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
             reduce_sum: bool, with_grad: bool, params: dict) -> Tuple[Tensor, Tensor]:
    pred = pred.contiguous()
    n = pred.numel()
    cols, weight_arg, w_row, w_col = _layout(pred, weight)
    grad = torch.empty_like(pred) if with_grad else pred.new_empty((0,))
    if reduce_sum:
        if n == 0:
            return pred.new_zeros(()), grad
        partial = torch.empty(triton.cdiv(n, BLOCK), dtype=torch.float64, device=pred.device)
        out = partial
    else:
        out = torch.empty_like(pred)
        if n == 0:
            return out, grad
    with _on_device(pred):
        kernel[(triton.cdiv(n, BLOCK),)](
            pred, target, weight_arg, w_row, w_col, weight is not None, pred, 0, out,
            grad if with_grad else pred, n, cols, gamma=float(gamma), **params,
            gamma_kind=_gamma_kind(gamma), LOSS=_SUM if reduce_sum else _ELEMENTWISE,
            GRAD=with_grad, BLOCK=BLOCK)
    if reduce_sum:
        return partial.sum().to(pred.dtype), grad
    return out, grad


def _backward(kernel, grad_output: Tensor, pred: Tensor, target: Tensor,
              weight: Optional[Tensor], gamma: float, params: dict) -> Tensor:
    pred = pred.contiguous()
    n = pred.numel()
    cols, weight_arg, w_row, w_col = _layout(pred, weight)
    grad_output = grad_output.to(pred.dtype).contiguous()
    scalar = grad_output.dim() == 0
    if not scalar and grad_output.shape != pred.shape:
        raise ValueError(f'grad_output must be a scalar or of shape {tuple(pred.shape)}, got '
                         f'{tuple(grad_output.shape)}')
    grad = torch.empty_like(pred)
    if n == 0:
        return grad
    with _on_device(pred):
        kernel[(triton.cdiv(n, BLOCK),)](
            pred, target, weight_arg, w_row, w_col, weight is not None, grad_output,
            0 if scalar else 1, grad, grad, n, cols, gamma=float(gamma), **params,
            gamma_kind=_gamma_kind(gamma), LOSS=_NO_LOSS, GRAD=True, BLOCK=BLOCK)
    return grad


def _index_params(alpha: float) -> dict:
    # alpha < 0: no alpha factor (the CPU kernel's make_params)
    return dict(neg_alpha=1.0 if alpha < 0 else 1.0 - alpha, pos_alpha=1.0 if alpha < 0 else alpha)


def focal_forward(pred: Tensor, labels: Tensor, weight: Optional[Tensor], gamma: float,
                  alpha: float, reduce_sum: bool, with_grad: bool) -> Tuple[Tensor, Tensor]:
    """The weighted focal loss of logits (N, C) and labels (N,): element-wise (N, C) or its sum
    (``reduce_sum``, a 0-d tensor), and (``with_grad``) the weighted gradient (N, C) computed in
    the same pass, else an empty placeholder. ``weight``: None, (N, 1) or (N, C)."""
    return _forward(_focal_index_kernel, pred, labels.contiguous(), weight, gamma, reduce_sum,
                    with_grad, _index_params(alpha))


def focal_backward(grad_output: Tensor, pred: Tensor, labels: Tensor, weight: Optional[Tensor],
                   gamma: float, alpha: float) -> Tensor:
    """The gradient of the forward w.r.t. the logits; ``grad_output`` 0-d or (N, C)."""
    return _backward(_focal_index_kernel, grad_output, pred, labels.contiguous(), weight, gamma,
                     _index_params(alpha))


def _soft_params(alpha: float) -> dict:
    return dict(alpha=float(alpha), has_alpha=alpha >= 0)


def focal_soft_forward(pred: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
                       alpha: float, reduce_sum: bool, with_grad: bool) -> Tuple[Tensor, Tensor]:
    """As :func:`focal_forward` for targets of pred's shape (in pred's dtype); ``weight``: None,
    of pred's shape, or (N, 1) for 2-D logits."""
    return _forward(_focal_soft_kernel, pred, target.contiguous(), weight, gamma, reduce_sum,
                    with_grad, _soft_params(alpha))


def focal_soft_backward(grad_output: Tensor, pred: Tensor, target: Tensor,
                        weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    """As :func:`focal_backward` for targets of pred's shape."""
    return _backward(_focal_soft_kernel, grad_output, pred, target.contiguous(), weight, gamma,
                     _soft_params(alpha))


def compile_specs():
    """Every kernel this module launches, as ``(jit_function, signature, constexprs)`` for
    ``triton.compiler.ASTSource``: both target forms, float32 and float64, and each (loss, gradient)
    mode the functions above use (every gamma runs the same compiled kernel)."""
    modes = [(_ELEMENTWISE, False), (_SUM, False), (_ELEMENTWISE, True), (_SUM, True),
             (_NO_LOSS, True)]
    specs = []
    for kernel, target, extra in ((_focal_index_kernel, '*i64', {'neg_alpha': 'fp64',
                                                                  'pos_alpha': 'fp64'}),
                                  (_focal_soft_kernel, None, {'alpha': 'fp64',
                                                              'has_alpha': 'u1'})):
        target_name = 'labels_ptr' if kernel is _focal_index_kernel else 't_ptr'
        for dtype in ('fp32', 'fp64'):
            for loss, grad in modes:
                signature = {
                    'x_ptr': f'*{dtype}', target_name: target or f'*{dtype}',
                    'w_ptr': f'*{dtype}', 'w_row_stride': 'i32', 'w_col_stride': 'i32',
                    'has_weight': 'u1', 'go_ptr': f'*{dtype}', 'go_stride': 'i32',
                    'loss_ptr': '*fp64' if loss == _SUM else f'*{dtype}',
                    'grad_ptr': f'*{dtype}', 'n': 'i32', 'cols': 'i32', 'gamma': 'fp64',
                    **extra, 'gamma_kind': 'i32', 'LOSS': 'constexpr', 'GRAD': 'constexpr',
                    'BLOCK': 'constexpr'}
                specs.append((kernel, signature, {'LOSS': loss, 'GRAD': grad, 'BLOCK': BLOCK}))
    return specs
