"""What the element-wise Triton kernels (:mod:`.focal`, :mod:`.regression`) share: scalar maths
and the store of a block's loss.

On the GPU ``exp`` and ``log1p`` are libdevice's (accurate; ``tl.exp`` is the fast
approximation); in Triton's interpreter, which has no libdevice, they are numpy's, ``log1p``
written with the rounding of ``1 + y`` corrected.
"""
import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ['ON_GPU', 'exp', 'log1p', 'as_dtype_of', 'store_loss']

#: False in Triton's interpreter (CPU tensors, numpy maths).
ON_GPU = tl.constexpr(os.environ.get('TRITON_INTERPRET') != '1')


@triton.jit
def exp(x):
    if ON_GPU:
        return libdevice.exp(x)
    else:
        return tl.exp(x)


@triton.jit
def log1p(y):
    """log(1 + y) for y >= 0, small y included: libdevice's on the GPU; in the interpreter
    ``log(u) y / (u - 1)`` with u = 1 + y rounded (the rounding of u corrected), y where u
    rounds to 1."""
    if ON_GPU:
        return libdevice.log1p(y)
    else:
        u = 1.0 + y
        um1 = u - 1.0
        safe = tl.where(um1 != 0.0, um1, 1.0)
        return tl.where(um1 != 0.0, tl.log(u) * (y / safe), y)


@triton.jit
def as_dtype_of(value, like):
    """The float64 scalar ``value`` in the dtype of ``like`` (exactly as the host's double
    would be cast: a float argument is float32 otherwise)."""
    return tl.full((), value, tl.float64).to(like.dtype)


@triton.jit
def store_loss(loss, loss_ptr, pid, offs, mask, SUM: tl.constexpr):
    """Writes a program's block of loss: element-wise, or (``SUM``) its float64 sum into the
    program's slot of the partial sums, which ``torch.sum`` then adds in a fixed order."""
    if SUM:
        total = tl.sum(tl.where(mask, loss.to(tl.float64), 0.0), axis=0)
        tl.store(loss_ptr + pid, total)
    else:
        tl.store(loss_ptr + offs, loss, mask=mask)
