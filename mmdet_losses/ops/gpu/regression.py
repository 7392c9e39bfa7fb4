"""The element-wise regression losses (L1, L2, Smooth L1, Balanced L1) as Triton kernels: the
CUDA implementations of ``torch.ops.mmdet_losses.regression_loss`` and
``regression_loss_backward`` (:mod:`mmdet_losses.ops.regression_kernel`).

:func:`regression_forward` and :func:`regression_backward` take the CPU operators' arguments
and return their outputs. The maths is that of the CPU kernel
(``csrc/regression/regression_loss.cpp``) and of the plain path
(:mod:`mmdet_losses.functional.regression`), autograd's conventions at the kinks included:
``|d|`` has gradient ``sign(d)`` (0 at 0), ``x = beta`` takes the outer branch, and a NaN or
infinite residual gives a NaN loss and a NaN gradient (``d - d`` added, as the plain path's
``with_nonfinite``). The reduced forward never writes the element-wise loss: each program sums
its block in float64 into a buffer of partial sums, which ``torch.sum`` adds in a fixed order
(deterministic, no atomics), as the CPU kernel sums in double per fixed block. The parameters
and the constants derived from them are computed in double on the host, as the CPU kernel's
``make_params``, handed over as float64 scalars and cast to the compute dtype in the kernel.
Which loss a kernel computes is a compile-time name (``LOSS``), mapped from the kind ids of the
extension's table (``FUSED_KINDS``): no id is written here.
"""
import contextlib
import math
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..regression_kernel import FUSED_KINDS
from .elementwise import as_dtype_of, log1p, store_loss

__all__ = ['regression_forward', 'regression_backward', 'compile_specs']

#: Elements per program; the reduced forward sums each block in float64.
BLOCK = 1024


@triton.jit
def _element_loss(d, LOSS: tl.constexpr, beta, half_beta, alpha, gamma, b, alpha_over_b,
                  gamma_over_b, alpha_beta):
    if LOSS == 'mse':
        loss = d * d
    elif LOSS == 'l1':
        loss = tl.abs(d)
    elif LOSS == 'smooth_l1':
        x = tl.abs(d)
        beta_t = as_dtype_of(beta, d)
        loss = tl.where(x < beta_t, 0.5 * (x * x) / beta_t, x - as_dtype_of(half_beta, d))
    else:  # balanced_l1; the inlier formula at x clamped to beta, as the plain path
        x = tl.abs(d)
        beta_t = as_dtype_of(beta, d)
        small = tl.minimum(x, beta_t)
        bx = as_dtype_of(b, d) * small
        inlier = (as_dtype_of(alpha_over_b, d) * (bx + 1.0) * log1p(bx / beta_t)
                  - as_dtype_of(alpha, d) * small)
        outlier = (as_dtype_of(gamma, d) * x + as_dtype_of(gamma_over_b, d)
                   - as_dtype_of(alpha_beta, d))
        loss = tl.where(x < beta_t, inlier, outlier)
    return loss


@triton.jit
def _element_grad(d, LOSS: tl.constexpr, beta, alpha, gamma, b, alpha_over_b, b_over_beta):
    """d loss / d pred of one residual (NaN for a NaN or infinite residual)."""
    poison = d - d
    sign = (d > 0.0).to(d.dtype) - (d < 0.0).to(d.dtype)
    if LOSS == 'mse':
        grad = 2.0 * d
    elif LOSS == 'l1':
        grad = sign
    elif LOSS == 'smooth_l1':
        x = tl.abs(d)
        beta_t = as_dtype_of(beta, d)
        grad = tl.where(x < beta_t, sign * (x / beta_t), sign)
    else:
        x = tl.abs(d)
        beta_t = as_dtype_of(beta, d)
        alpha_t = as_dtype_of(alpha, d)
        bx = as_dtype_of(b, d) * tl.minimum(x, beta_t)
        inlier = (alpha_t * log1p(bx / beta_t)
                  + as_dtype_of(alpha_over_b, d) * (bx + 1.0) * as_dtype_of(b_over_beta, d)
                  / (1.0 + bx / beta_t)
                  - alpha_t)
        grad = sign * tl.where(x < beta_t, inlier, as_dtype_of(gamma, d))
    return grad + poison


@triton.jit
def _regression_forward_kernel(p_ptr, t_ptr, w_ptr, out_ptr, n, has_weight,
                               beta: tl.float64, half_beta: tl.float64, alpha: tl.float64,
                               gamma: tl.float64, b: tl.float64, alpha_over_b: tl.float64,
                               gamma_over_b: tl.float64, alpha_beta: tl.float64,
                               LOSS: tl.constexpr, REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    """The weighted element-wise loss into ``out`` (n,), or (REDUCE) the float64 sum of each
    block into ``out[program]``. Without a weight the load is masked off (1, no read)."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(p_ptr + offs, mask=mask, other=0.0)
    t = tl.load(t_ptr + offs, mask=mask, other=0.0)
    w = tl.load(w_ptr + offs, mask=mask & has_weight, other=1.0)
    d = p - t
    # + (d - d): NaN for a NaN or infinite residual, as the plain path's with_nonfinite
    loss = _element_loss(d, LOSS, beta, half_beta, alpha, gamma, b, alpha_over_b, gamma_over_b,
                         alpha_beta) + (d - d)
    store_loss(loss * w, out_ptr, pid, offs, mask, REDUCE)


@triton.jit
def _regression_backward_kernel(g_ptr, g_stride, p_ptr, t_ptr, w_ptr, gp_ptr, gt_ptr, n,
                                has_weight, target_grad, beta: tl.float64, alpha: tl.float64,
                                gamma: tl.float64, b: tl.float64, alpha_over_b: tl.float64,
                                b_over_beta: tl.float64, LOSS: tl.constexpr,
                                BLOCK: tl.constexpr):
    """grad_pred = g w d loss / d pred, with g one value (``g_stride`` 0: the gradient of a
    sum) or one per element; grad_target = -grad_pred where ``target_grad`` (else the store is
    masked off)."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs * g_stride, mask=mask, other=0.0)
    p = tl.load(p_ptr + offs, mask=mask, other=0.0)
    t = tl.load(t_ptr + offs, mask=mask, other=0.0)
    w = tl.load(w_ptr + offs, mask=mask & has_weight, other=1.0)
    grad = (g * w) * _element_grad(p - t, LOSS, beta, alpha, gamma, b, alpha_over_b,
                                   b_over_beta)
    tl.store(gp_ptr + offs, grad, mask=mask)
    tl.store(gt_ptr + offs, -grad, mask=mask & target_grad)


# ------------------------------------------------------------------------------ launching
def _loss_name(kind: int) -> str:
    for name, kind_id in FUSED_KINDS.items():
        if kind_id == kind:
            return name
    raise ValueError(f'kind must be one of the ids {FUSED_KINDS}, got {kind}')


def _div(a: float, b: float) -> float:
    """a / b with IEEE semantics (as the C++ kernel's doubles), not Python's ZeroDivisionError:
    the constants of a loss that does not use them may divide by a zero beta."""
    if b != 0:
        return a / b
    return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(
        1.0, b)


def _params(beta: float, alpha: float, gamma: float) -> dict:
    """The CPU kernel's ``make_params``: the constants derived in double."""
    ratio = _div(gamma, alpha)
    b = math.exp(ratio) - 1.0 if ratio < 709.0 or math.isnan(ratio) else math.inf
    return dict(beta=beta, half_beta=0.5 * beta, alpha=alpha, gamma=gamma, b=b,
                alpha_over_b=_div(alpha, b), gamma_over_b=_div(gamma, b),
                alpha_beta=alpha * beta, b_over_beta=_div(b, beta))


def _on_device(tensor: Tensor):
    """Launches on ``tensor``'s GPU (Triton launches on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _grid(n: int):
    return (triton.cdiv(n, BLOCK),)


def regression_forward(pred: Tensor, target: Tensor, weight: Optional[Tensor], kind: int,
                       beta: float, alpha: float, gamma: float, reduce: bool) -> Tensor:
    """The weighted element-wise loss of pred's shape (``reduce=False``) or its sum, a 0-d
    tensor in pred's dtype (accumulated in float64)."""
    loss = _loss_name(kind)
    pred, target = pred.contiguous(), target.contiguous()
    weight_arg = pred if weight is None else weight.contiguous()
    n = pred.numel()
    prm = _params(beta, alpha, gamma)
    del prm['b_over_beta']
    if reduce:
        if n == 0:
            return pred.new_zeros(())
        partial = torch.empty(_grid(n)[0], dtype=torch.float64, device=pred.device)
        out = partial
    else:
        out = torch.empty_like(pred, memory_format=torch.contiguous_format)
        if n == 0:
            return out
    with _on_device(pred):
        _regression_forward_kernel[_grid(n)](pred, target, weight_arg, out, n,
                                             weight is not None, **prm, LOSS=loss,
                                             REDUCE=reduce, BLOCK=BLOCK)
    if reduce:
        return partial.sum().to(pred.dtype)
    return out


def regression_backward(grad: Tensor, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                        kind: int, beta: float, alpha: float, gamma: float, scalar_grad: bool,
                        target_grad: bool) -> Tuple[Tensor, Tensor]:
    """The gradients of pred and (``target_grad``; else an empty placeholder) of target.
    ``grad`` has one element (``scalar_grad``) or pred's shape."""
    loss = _loss_name(kind)
    pred, target = pred.contiguous(), target.contiguous()
    weight_arg = pred if weight is None else weight.contiguous()
    grad = grad.to(pred.dtype).contiguous()
    if scalar_grad and grad.numel() != 1:
        raise ValueError(f'grad must have one element with scalar_grad, got shape '
                         f'{tuple(grad.shape)}')
    if not scalar_grad and grad.shape != pred.shape:
        raise ValueError(f'grad must have the shape of pred {tuple(pred.shape)}, got '
                         f'{tuple(grad.shape)}')
    n = pred.numel()
    grad_pred = torch.empty_like(pred, memory_format=torch.contiguous_format)
    grad_target = (torch.empty_like(grad_pred) if target_grad
                   else pred.new_empty((0,)))
    if n > 0:
        prm = _params(beta, alpha, gamma)
        for unused in ('half_beta', 'gamma_over_b', 'alpha_beta'):
            del prm[unused]
        with _on_device(pred):
            _regression_backward_kernel[_grid(n)](
                grad, 0 if scalar_grad else 1, pred, target, weight_arg, grad_pred,
                grad_target if target_grad else grad_pred, n, weight is not None, target_grad,
                **prm, LOSS=loss, BLOCK=BLOCK)
    return grad_pred, grad_target


def compile_specs():
    """Every kernel this module launches, as ``(jit_function, signature, constexprs)`` for
    ``triton.compiler.ASTSource``: each loss, float32 and float64, reduced or not."""
    specs = []
    fwd_scalars = ('beta', 'half_beta', 'alpha', 'gamma', 'b', 'alpha_over_b', 'gamma_over_b',
                   'alpha_beta')
    bwd_scalars = ('beta', 'alpha', 'gamma', 'b', 'alpha_over_b', 'b_over_beta')
    for dtype in ('fp32', 'fp64'):
        for loss in FUSED_KINDS:
            for reduce in (False, True):
                signature = {'p_ptr': f'*{dtype}', 't_ptr': f'*{dtype}', 'w_ptr': f'*{dtype}',
                             'out_ptr': '*fp64' if reduce else f'*{dtype}', 'n': 'i32',
                             'has_weight': 'u1', **{k: 'fp64' for k in fwd_scalars},
                             'LOSS': 'constexpr', 'REDUCE': 'constexpr', 'BLOCK': 'constexpr'}
                specs.append((_regression_forward_kernel, signature,
                              {'LOSS': loss, 'REDUCE': reduce, 'BLOCK': BLOCK}))
            signature = {'g_ptr': f'*{dtype}', 'g_stride': 'i32', 'p_ptr': f'*{dtype}',
                         't_ptr': f'*{dtype}', 'w_ptr': f'*{dtype}', 'gp_ptr': f'*{dtype}',
                         'gt_ptr': f'*{dtype}', 'n': 'i32', 'has_weight': 'u1',
                         'target_grad': 'u1', **{k: 'fp64' for k in bwd_scalars},
                         'LOSS': 'constexpr', 'BLOCK': 'constexpr'}
            specs.append((_regression_backward_kernel, signature, {'LOSS': loss, 'BLOCK': BLOCK}))
    return specs
