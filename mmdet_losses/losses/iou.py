"""Registered IoU-family loss modules; the maths lives in :mod:`mmdet_losses.functional.iou`.

Every module takes ``pred`` and ``target`` boxes (..., 4) in its ``box_format`` and an
optional ``weight`` of shape (...,) or (..., 4) (averaged over the last dim). The modules
that mmdet also has (IoULoss, GIoULoss, DIoULoss, CIoULoss, EIoULoss, SIoULoss) accept its
``eps`` argument with its default (1e-6), so a config that only prefixes mmdet's type with
``mmdet_losses.`` keeps working.
"""
import warnings
from typing import Optional, Sequence, Union

import torch

from ..boxes import BOX_FORMATS
from ..functional import iou as F
from ..registry import MODELS
from ..validation import check_choice, check_number
from .base import BaseLoss

__all__ = ['IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss', 'WIoULoss',
           'AlphaIoULoss', 'MPDIoULoss', 'InnerIoULoss', 'FocalerIoULoss', 'ShapeIoULoss',
           'NWDLoss']


class _BoxLoss(BaseLoss):
    """A box loss: stores the validated ``box_format`` and ``eps`` every variant takes."""

    inputs = 'pred and target: boxes (..., 4) in box_format (xyxy by default)'

    def __init__(self, box_format: str = 'xyxy', eps: Optional[float] = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        check_choice('box_format', box_format, BOX_FORMATS)
        self.box_format = box_format
        self.eps = None if eps is None else F._check_eps(eps)

    def _params(self, call_kwargs: dict, **params) -> dict:
        """The stored parameters and ``params``, overridden by a call's ``call_kwargs``."""
        common = {'box_format': self.box_format}
        if self.eps is not None:
            common['eps'] = self.eps
        return {**common, **params, **call_kwargs}


@MODELS.register_module()
class IoULoss(_BoxLoss):
    """IoU loss: 'linear' ``1 - IoU``, 'square' ``1 - IoU^2``, 'log' ``-log IoU`` (mmdet's
    default); see :func:`mmdet_losses.functional.iou_loss`.

    Args:
        mode: 'linear', 'square' or 'log'.
        box_format: 'xyxy', 'xywh' or 'cxcywh'.
        eps: floor of the union and of the IoU.
        linear: mmdet's deprecated spelling of ``mode='linear'``.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> IoULoss(mode='linear')(pred, target)
        tensor(0.6667)
    """

    def __init__(self, mode: str = 'log', box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0, linear: bool = False):
        super().__init__(box_format, eps, reduction, loss_weight)
        check_choice('mode', mode, F.IOU_LOSS_MODES)
        if linear:
            warnings.warn("IoULoss(linear=True) is deprecated, use mode='linear'",
                          DeprecationWarning)
            mode = 'linear'
        self.mode = mode

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.iou_loss(pred, target, weight, reduction, avg_factor,
                          **self._params(kwargs, mode=self.mode))


@MODELS.register_module()
class GIoULoss(_BoxLoss):
    """Generalized IoU loss ``1 - IoU + (C - U) / C`` (see
    :func:`mmdet_losses.functional.giou_loss`).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> target = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> GIoULoss(eps=1e-6, loss_weight=2.0)(pred, target)
        tensor(3.)
    """

    def __init__(self, box_format: str = 'xyxy', eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.giou_loss(pred, target, weight, reduction, avg_factor, **self._params(kwargs))


@MODELS.register_module()
class DIoULoss(_BoxLoss):
    """Distance IoU loss ``1 - IoU + rho^2 / c^2`` (see
    :func:`mmdet_losses.functional.diou_loss`).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> target = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> DIoULoss()(pred, target)
        tensor(1.2500)
    """

    def __init__(self, box_format: str = 'xyxy', eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.diou_loss(pred, target, weight, reduction, avg_factor, **self._params(kwargs))


@MODELS.register_module()
class CIoULoss(_BoxLoss):
    """Complete IoU loss ``1 - IoU + rho^2 / c^2 + alpha v`` (see
    :func:`mmdet_losses.functional.ciou_loss`).

    Args:
        iou_gate: ``alpha = 0`` where ``IoU <= iou_gate`` (0.5, as mmdet); None: no gate
            (torchvision).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[0.0, 0.0, 2.0, 3.0]])
        >>> CIoULoss()(pred, target)
        tensor(0.3533)
    """

    def __init__(self, iou_gate: Optional[float] = 0.5, box_format: str = 'xyxy',
                 eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.iou_gate = F._check_gate(iou_gate)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.ciou_loss(pred, target, weight, reduction, avg_factor,
                           **self._params(kwargs, iou_gate=self.iou_gate))


@MODELS.register_module()
class EIoULoss(_BoxLoss):
    """Efficient IoU loss (Zhang et al. 2021; NOT mmdet's Extended-IoU ``EIoULoss``):
    ``1 - IoU + rho^2 / c^2 + dw^2 / C_w^2 + dh^2 / C_h^2``, times ``IoU^gamma`` (Focal-EIoU)
    when ``gamma > 0`` (see :func:`mmdet_losses.functional.eiou_loss`).

    Args:
        gamma: Focal-EIoU's exponent, >= 0 (0.5 in the paper; 0: plain EIoU).
        smooth_point: refused (TypeError naming :class:`ExtendedIoULoss`): it is the
            argument of mmdet's Extended-IoU ``EIoULoss``, which is ``ExtendedIoULoss`` here.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
        >>> EIoULoss()(pred, target)
        tensor(0.8000)
    """

    def __init__(self, gamma: float = 0.0, box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 smooth_point: None = None):
        if smooth_point is not None:  # mmdet's Extended-IoU argument: never train another loss
            raise TypeError(
                f'EIoULoss is Efficient-IoU (Zhang et al. 2021) and takes no smooth_point (got '
                f'{smooth_point!r}): mmdet\'s EIoULoss(smooth_point=...) is the Extended-IoU '
                f'loss, which is ExtendedIoULoss here (type=\'mmdet_losses.ExtendedIoULoss\')')
        super().__init__(box_format, eps, reduction, loss_weight)
        self.gamma = check_number('gamma', gamma, low=0.0)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.eiou_loss(pred, target, weight, reduction, avg_factor,
                           **self._params(kwargs, gamma=self.gamma))


@MODELS.register_module()
class SIoULoss(_BoxLoss):
    """SCYLLA IoU loss ``1 - IoU + (Delta + Omega) / 2`` with the paper's sign of the distance
    cost (mmdet's ``neg_gamma=True``); see :func:`mmdet_losses.functional.siou_loss`.

    Args:
        theta: the shape cost's exponent, >= 1.
        neg_gamma: mmdet's argument. True (our default): the paper's distance cost. False
            (mmdet's default): mmdet's flipped sign, whose distance cost decreases the loss as
            the centres move apart and which is 0 for far-apart boxes; for drop-in parity
            only (see :func:`mmdet_losses.functional.siou_loss`). A config that prefixes
            mmdet's ``SIoULoss`` without ``neg_gamma`` therefore trains the paper's loss here
            (docs/dropin.md).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> SIoULoss()(pred, target)
        tensor(0.7663)
        >>> SIoULoss(neg_gamma=False)(pred, target)  # 1 - 1/3 - (exp(2/9) - 1) / 2
        tensor(0.5422)
    """

    def __init__(self, theta: float = 4.0, box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0, neg_gamma: bool = True):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.theta = check_number('theta', theta, low=1.0)
        if not isinstance(neg_gamma, bool):
            raise TypeError(f'neg_gamma must be a bool, got {type(neg_gamma).__name__} '
                            f'{neg_gamma!r}')
        self.neg_gamma = neg_gamma

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.siou_loss(pred, target, weight, reduction, avg_factor,
                           **self._params(kwargs, theta=self.theta, neg_gamma=self.neg_gamma))


@MODELS.register_module()
class WIoULoss(_BoxLoss):
    """Wise-IoU loss v1, v2 or v3 (see :func:`mmdet_losses.functional.wiou_loss`).

    v2 and v3 divide by the running mean of ``1 - IoU``, the buffer ``running_mean``
    (initially 1, as the authors' code). It is updated in training mode only, by
    ``momentum``, from the weighted batch mean, which is all-reduced over the process group
    when torch.distributed is initialised, so every rank keeps the same value. A batch whose
    mean is not finite (a NaN or inf box or weight) leaves it unchanged (no host
    synchronisation), so one bad batch cannot poison the later ones.

    Loading a state dict (a checkpoint) whose ``running_mean`` is NaN or inf (one saved by an
    earlier version after a bad batch) restores the initial value 1.0 instead, with a
    ``RuntimeWarning`` naming the buffer: training resumes from a finite state, the mean
    re-converges within about ``1 / momentum`` steps.

    Args:
        version: 'v1', 'v2' or 'v3'.
        alpha, delta: v3's non-monotonic focusing parameters.
        momentum: of the running-mean update, in [0, 1].
        sync: all-reduce the batch statistic (a collective: every rank must call the loss
            equally often; set False for a head that skips the loss on a rank without
            positives, at the price of per-rank means).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> loss = WIoULoss(momentum=0.5)
        >>> loss(pred, target)  # training mode: updates the mean, then uses it
        tensor(0.7880)
        >>> loss.running_mean
        tensor(0.8333)
    """

    def __init__(self, version: str = 'v3', alpha: float = 1.9, delta: float = 3.0,
                 momentum: float = 0.01, sync: bool = True, box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        check_choice('version', version, F.WIOU_VERSIONS)
        self.sync = bool(sync)
        self.version = version
        self.alpha = check_number('alpha', alpha, low=0.0, low_open=True)
        self.delta = check_number('delta', delta, low=0.0, low_open=True)
        self.momentum = check_number('momentum', momentum, low=0.0, high=1.0)
        self.register_buffer('running_mean', torch.ones(()))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + 'running_mean'
        value = state_dict.get(key)
        # reading the value syncs once per load, never on the training path; meta tensors
        # (no data) are loaded as they are
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and value.device.type != 'meta' and not bool(torch.isfinite(value).all()):
            warnings.warn(f'{key} in the state dict is not finite ({value.tolist()}); '
                          f'WIoULoss restores its initial value 1.0', RuntimeWarning,
                          stacklevel=2)
            state_dict = {**state_dict, key: torch.ones_like(value)}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.wiou_loss(pred, target, weight, reduction, avg_factor, **self._params(
            kwargs, version=self.version, alpha=self.alpha, delta=self.delta,
            momentum=self.momentum, running_mean=self.running_mean, training=self.training,
            sync=self.sync))


@MODELS.register_module()
class AlphaIoULoss(_BoxLoss):
    """Alpha-IoU: the IoU and each penalty of ``base`` raised to ``alpha`` (see
    :func:`mmdet_losses.functional.alpha_iou_loss`).

    Args:
        alpha: the power, > 0.
        base: 'iou', 'giou', 'diou' or 'ciou'.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> AlphaIoULoss(alpha=2.0)(pred, target)
        tensor(0.8889)
    """

    def __init__(self, alpha: float = 3.0, base: str = 'iou', box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.alpha = check_number('alpha', alpha, low=0.0, low_open=True)
        check_choice('base', base, F.ALPHA_IOU_BASES)
        self.base = base

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.alpha_iou_loss(pred, target, weight, reduction, avg_factor,
                                **self._params(kwargs, alpha=self.alpha, base=self.base))


@MODELS.register_module()
class MPDIoULoss(_BoxLoss):
    """MPDIoU loss ``1 - IoU + (d1^2 + d2^2) / (W^2 + H^2)`` (see
    :func:`mmdet_losses.functional.mpdiou_loss`).

    Args:
        img_size: the input image's (width, height), or one number for a square image; a
            call may override it with ``img_size=...``.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> loss = MPDIoULoss(img_size=(4, 2))
        >>> loss(pred, target), loss(pred, target, img_size=(640, 640))
        (tensor(0.7667), tensor(0.6667))
    """

    def __init__(self, img_size: Union[float, Sequence[float]], box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.img_size = F._check_img_size(img_size)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.mpdiou_loss(pred, target, weight, reduction, avg_factor,
                             **self._params(kwargs, img_size=self.img_size))


@MODELS.register_module()
class InnerIoULoss(_BoxLoss):
    """Inner-IoU ``L_base + IoU - IoU_inner`` with auxiliary boxes scaled by ``ratio`` (see
    :func:`mmdet_losses.functional.inner_iou_loss`).

    Args:
        ratio: the auxiliary boxes' scale, > 0.
        base: 'iou', 'giou', 'diou', 'ciou', 'siou' or 'eiou'.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> InnerIoULoss(ratio=0.5)(pred, target)
        tensor(1.)
    """

    def __init__(self, ratio: float = 0.75, base: str = 'iou', box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.ratio = check_number('ratio', ratio, low=0.0, low_open=True)
        check_choice('base', base, F.COMPOSITE_BASES)
        self.base = base

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.inner_iou_loss(pred, target, weight, reduction, avg_factor,
                                **self._params(kwargs, ratio=self.ratio, base=self.base))


@MODELS.register_module()
class FocalerIoULoss(_BoxLoss):
    """Focaler-IoU ``L_base + IoU - clamp((IoU - d) / (u - d), 0, 1)`` (see
    :func:`mmdet_losses.functional.focaler_iou_loss`).

    Args:
        d, u: ``0 <= d < u <= 1``.
        base: 'iou', 'giou', 'diou', 'ciou', 'siou' or 'eiou'.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> FocalerIoULoss(d=0.0, u=0.5)(pred, target)
        tensor(0.3333)
    """

    def __init__(self, d: float = 0.0, u: float = 0.95, base: str = 'iou',
                 box_format: str = 'xyxy', eps: float = 1e-7, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.d = check_number('d', d, low=0.0, high=1.0)
        self.u = check_number('u', u, low=0.0, high=1.0)
        if not self.d < self.u:
            raise ValueError(f'd must be less than u, got d={d} and u={u}')
        check_choice('base', base, F.COMPOSITE_BASES)
        self.base = base

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.focaler_iou_loss(pred, target, weight, reduction, avg_factor,
                                  **self._params(kwargs, d=self.d, u=self.u, base=self.base))


@MODELS.register_module()
class ShapeIoULoss(_BoxLoss):
    """Shape-IoU loss ``1 - IoU + distance_shape + Omega_shape / 2`` (see
    :func:`mmdet_losses.functional.shape_iou_loss`).

    Args:
        scale: >= 0, tied to the size of the dataset's targets.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> ShapeIoULoss()(pred, target)
        tensor(0.7436)
    """

    def __init__(self, scale: float = 0.0, box_format: str = 'xyxy', eps: float = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.scale = check_number('scale', scale, low=0.0)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.shape_iou_loss(pred, target, weight, reduction, avg_factor,
                                **self._params(kwargs, scale=self.scale))


@MODELS.register_module()
class NWDLoss(_BoxLoss):
    """Normalized Gaussian Wasserstein distance loss ``1 - exp(-W2 / C)`` (see
    :func:`mmdet_losses.functional.nwd_loss`).

    Args:
        constant: ``C`` > 0, of the order of the dataset's object size.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[3.0, 4.0, 5.0, 6.0]])
        >>> NWDLoss(constant=5.0)(pred, target)
        tensor(0.6321)
    """

    def __init__(self, constant: float = 12.8, box_format: str = 'xyxy',
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, None, reduction, loss_weight)
        self.constant = check_number('constant', constant, low=0.0, low_open=True)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return F.nwd_loss(pred, target, weight, reduction, avg_factor,
                          **self._params(kwargs, constant=self.constant))
