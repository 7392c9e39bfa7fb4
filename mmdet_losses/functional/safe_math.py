"""Powers whose gradient stays finite at 0, shared by the loss families."""
import torch
from torch import Tensor

__all__ = ['safe_pow', 'safe_sqrt']


def safe_pow(x: Tensor, power: float) -> Tensor:
    """``x ** power`` for x > 0 and 0 elsewhere, with a zero gradient at 0 where the plain
    power's would be infinite (power < 1) and turn into NaN through the chain rule.

    Example:
        >>> from mmdet_losses.functional.safe_math import safe_pow
        >>> x = torch.tensor([0.0, 4.0], requires_grad=True)
        >>> safe_pow(x, 0.5).sum().backward()
        >>> x.grad
        tensor([0.0000, 0.2500])
    """
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).pow(power),
                       torch.zeros_like(x))


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 (the subgradient of |d| at d = 0).

    Example:
        >>> from mmdet_losses.functional.safe_math import safe_sqrt
        >>> safe_sqrt(torch.tensor([0.0, 9.0]))
        tensor([0., 3.])
    """
    return safe_pow(x, 0.5)
