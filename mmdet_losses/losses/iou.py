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

from ..functional import iou as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss', 'WIoULoss',
           'AlphaIoULoss', 'MPDIoULoss', 'InnerIoULoss', 'FocalerIoULoss', 'ShapeIoULoss',
           'NWDLoss']


class _BoxLoss(BaseLoss):
    """A box loss: stores the validated ``box_format`` and ``eps`` every variant takes (each
    declares them in its ``params``); a call's keyword arguments override the stored
    parameters (``img_size=`` of MPDIoULoss, ``box_format=`` of a head)."""

    inputs = 'pred and target: boxes (..., 4) in box_format (xyxy by default)'

    def __init__(self, box_format: str = 'xyxy', eps: Optional[float] = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.box_format = F.check_box_format(box_format)
        self.eps = None if eps is None else F.check_eps(eps)

    def functional_kwargs(self) -> dict:
        kwargs = super().functional_kwargs()
        if 'eps' in kwargs and kwargs['eps'] is None:  # eps=None: the functional's default
            del kwargs['eps']
        return kwargs

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        return self.functional(pred, target, weight, reduction, avg_factor,
                               **{**self.functional_kwargs(), **kwargs})


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

    functional = F.iou_loss
    params = ('mode', 'box_format', 'eps')

    def __init__(self, mode: str = 'log', box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0, linear: bool = False):
        super().__init__(box_format, eps, reduction, loss_weight)
        F.check_iou_mode(mode)
        if linear:
            warnings.warn("IoULoss(linear=True) is deprecated, use mode='linear'",
                          DeprecationWarning)
            mode = 'linear'
        self.mode = mode


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

    functional = F.giou_loss
    params = ('box_format', 'eps')

    def __init__(self, box_format: str = 'xyxy', eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)


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

    functional = F.diou_loss
    params = ('box_format', 'eps')

    def __init__(self, box_format: str = 'xyxy', eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)


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

    functional = F.ciou_loss
    params = ('iou_gate', 'box_format', 'eps')

    def __init__(self, iou_gate: Optional[float] = 0.5, box_format: str = 'xyxy',
                 eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.iou_gate = F.check_iou_gate(iou_gate)


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

    functional = F.eiou_loss
    params = ('gamma', 'box_format', 'eps')

    def __init__(self, gamma: float = 0.0, box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 smooth_point: None = None):
        if smooth_point is not None:  # mmdet's Extended-IoU argument: never train another loss
            raise TypeError(
                f'EIoULoss is Efficient-IoU (Zhang et al. 2021) and takes no smooth_point (got '
                f'{smooth_point!r}): mmdet\'s EIoULoss(smooth_point=...) is the Extended-IoU '
                f'loss, which is ExtendedIoULoss here (type=\'mmdet_losses.ExtendedIoULoss\')')
        super().__init__(box_format, eps, reduction, loss_weight)
        self.gamma = F.check_eiou_gamma(gamma)


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

    functional = F.siou_loss
    params = ('theta', 'neg_gamma', 'box_format', 'eps')

    def __init__(self, theta: float = 4.0, box_format: str = 'xyxy', eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0, neg_gamma: bool = True):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.theta, self.neg_gamma = F.check_siou_params(theta, neg_gamma)


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

    functional = F.wiou_loss
    params = ('version', 'alpha', 'delta', 'momentum', 'sync', 'box_format', 'eps')

    def __init__(self, version: str = 'v3', alpha: float = 1.9, delta: float = 3.0,
                 momentum: float = 0.01, sync: bool = True, box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.version, self.alpha, self.delta, self.momentum = F.check_wiou_params(
            version, alpha, delta, momentum)
        self.sync = bool(sync)
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

    def functional_kwargs(self) -> dict:
        return {**super().functional_kwargs(), 'running_mean': self.running_mean,
                'training': self.training}


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

    functional = F.alpha_iou_loss
    params = ('alpha', 'base', 'box_format', 'eps')

    def __init__(self, alpha: float = 3.0, base: str = 'iou', box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.alpha, self.base = F.check_alpha_iou_params(alpha, base)


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

    functional = F.mpdiou_loss
    params = ('img_size', 'box_format', 'eps')

    def __init__(self, img_size: Union[float, Sequence[float]], box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.img_size = F.check_img_size(img_size)


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

    functional = F.inner_iou_loss
    params = ('ratio', 'base', 'box_format', 'eps')

    def __init__(self, ratio: float = 0.75, base: str = 'iou', box_format: str = 'xyxy',
                 eps: float = 1e-7, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.ratio, self.base = F.check_inner_iou_params(ratio, base)


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

    functional = F.focaler_iou_loss
    params = ('d', 'u', 'base', 'box_format', 'eps')

    def __init__(self, d: float = 0.0, u: float = 0.95, base: str = 'iou',
                 box_format: str = 'xyxy', eps: float = 1e-7, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.d, self.u, self.base = F.check_focaler_iou_params(d, u, base)


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

    functional = F.shape_iou_loss
    params = ('scale', 'box_format', 'eps')

    def __init__(self, scale: float = 0.0, box_format: str = 'xyxy', eps: float = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, eps, reduction, loss_weight)
        self.scale = F.check_shape_iou_scale(scale)


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

    functional = F.nwd_loss
    params = ('constant', 'box_format')

    def __init__(self, constant: float = 12.8, box_format: str = 'xyxy',
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(box_format, None, reduction, loss_weight)
        self.constant = F.check_nwd_constant(constant)
