"""The base every registered loss module derives from.

It owns the plumbing every mmdet loss shares (``reduction``, ``loss_weight``,
``reduction_override``, ``weight``, ``avg_factor``), so a loss class only states its own
parameters and implements :meth:`BaseLoss.compute` as one call to its functional form.
"""
from abc import ABCMeta, abstractmethod
from numbers import Number
from typing import Optional, Union

from torch import Tensor, nn

from ..validation import check_number, check_reduction


class BaseLoss(nn.Module, metaclass=ABCMeta):
    """A loss module: ``loss_weight * fn(pred, target, weight, reduction, avg_factor, ...)``.

    Args:
        reduction: 'none', 'mean' or 'sum', used unless a call passes ``reduction_override``.
        loss_weight: the factor the result is multiplied by.
    """

    #: What ``pred`` and ``target`` are, as the catalogue (``python -m mmdet_losses list``)
    #: shows it; None: read from the ``pred`` argument of the class's or functional's docstring.
    inputs: Optional[str] = None

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.loss_weight = check_number('loss_weight', loss_weight)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[Number, Tensor]] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Compute the weighted, reduced loss times ``loss_weight``.

        Args:
            pred: predictions (see the subclass for the shape).
            target: targets (see the subclass).
            weight: element-wise weight, broadcastable to the element-wise loss.
            avg_factor: divide the summed loss by this instead of the element count
                ('mean' only).
            reduction_override: replaces the module's ``reduction`` for this call.
            **kwargs: passed to the functional form.
        """
        reduction = self.reduction if reduction_override is None else check_reduction(
            reduction_override, 'reduction_override')
        loss = self.compute(pred, target, weight=weight, reduction=reduction,
                            avg_factor=avg_factor, **kwargs)
        return self.loss_weight * loss

    @abstractmethod
    def compute(self, pred: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                avg_factor, **kwargs) -> Tensor:
        """Call the loss's functional form with the module's parameters."""

    def extra_repr(self) -> str:
        return f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'
