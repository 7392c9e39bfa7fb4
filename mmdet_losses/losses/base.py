"""The base every registered loss module derives from.

It owns the plumbing every mmdet loss shares (``reduction``, ``loss_weight``,
``reduction_override``, ``weight``, ``avg_factor``) and the call of the loss's functional
form. A loss class declares that form and the parameters it stores, once::

    class SmoothL1Loss(BaseLoss):
        functional = F.smooth_l1_loss
        params = ('beta',)

        def __init__(self, beta=1.0, reduction='mean', loss_weight=1.0):
            super().__init__(reduction, loss_weight)
            self.beta = F.check_smooth_l1_params(beta)

and :meth:`BaseLoss.compute`, :meth:`BaseLoss.extra_repr` and the catalogue
(``python -m mmdet_losses list``) read the declaration. The ``__init__`` stays explicit: its
signature is what configs and the config checker read, and it validates the parameters with
the checker the functional form uses. A loss that needs more (state such as a running mean,
another call interface) overrides :meth:`BaseLoss.functional_kwargs`, :meth:`BaseLoss.compute`
or ``forward``; tests/test_declarative.py lists each such override with its reason.
"""
import inspect
from numbers import Number
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

from torch import Tensor, nn

from ..validation import check_number, check_reduction


class BaseLoss(nn.Module):
    """A loss module: ``loss_weight * functional(pred, target, weight, reduction, avg_factor,
    **params)``.

    Args:
        reduction: 'none', 'mean' or 'sum', used unless a call passes ``reduction_override``.
        loss_weight: the factor the result is multiplied by.

    Example:
        >>> from mmdet_losses.functional import smooth_l1_loss
        >>> class HalfBetaSmoothL1Loss(BaseLoss):
        ...     functional = smooth_l1_loss
        ...     params = ('beta',)
        ...     def __init__(self, beta=0.5, reduction='mean', loss_weight=1.0):
        ...         super().__init__(reduction, loss_weight)
        ...         self.beta = beta
        >>> loss = HalfBetaSmoothL1Loss(reduction='sum')
        >>> loss
        HalfBetaSmoothL1Loss(beta=0.5, reduction='sum', loss_weight=1.0)
        >>> loss(torch.tensor([0.25, 3.0]), torch.zeros(2))
        tensor(2.8125)
    """

    #: What ``pred`` and ``target`` are, as the catalogue (``python -m mmdet_losses list``)
    #: shows it; None: read from the ``pred`` argument of the class's or functional's docstring.
    inputs: Optional[str] = None
    #: The functional form, ``fn(pred, target, weight, reduction, avg_factor, **params)``
    #: (stored as a staticmethod: a plain function given here is wrapped).
    functional: ClassVar[Optional[Callable]] = None
    #: The keyword parameters of ``functional`` the module stores: each is an ``__init__``
    #: argument and an attribute of the same name, passed on every call and shown by repr.
    params: ClassVar[Tuple[str, ...]] = ()
    #: What repr shows before ``reduction`` and ``loss_weight``; None: ``params``.
    repr_params: ClassVar[Optional[Tuple[str, ...]]] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # a function stored on a class would be bound to the instance when read from it
        if inspect.isfunction(cls.__dict__.get('functional')):
            cls.functional = staticmethod(cls.__dict__['functional'])

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

    def functional_kwargs(self) -> Dict[str, Any]:
        """The keyword arguments every call passes to the functional form: the stored
        ``params`` (a stateful loss adds its state: buffers, the training mode)."""
        return {name: getattr(self, name) for name in self.params}

    def compute(self, pred: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                avg_factor, **kwargs) -> Tensor:
        """The functional form called with the module's parameters and the call's
        ``kwargs`` (a call's keyword that repeats a stored parameter is a TypeError)."""
        if self.functional is None:
            raise NotImplementedError(f'{type(self).__name__} declares no functional form: '
                                      f'set its functional attribute or override compute')
        return self.functional(pred, target, weight, reduction, avg_factor,
                               **self.functional_kwargs(), **kwargs)

    def extra_repr(self) -> str:
        names = self.params if self.repr_params is None else self.repr_params
        shown = ''.join(f'{name}={getattr(self, name)!r}, ' for name in names)
        return f'{shown}reduction={self.reduction!r}, loss_weight={self.loss_weight}'
