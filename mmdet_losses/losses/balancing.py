"""Registered re-weighting losses with running statistics (Seesaw, GHM-C, GHM-R, EQLv2), drop-ins
for mmdet's classes of the same names; the maths lives in
:mod:`mmdet_losses.functional.balancing`.

Their statistics are buffers (saved in the state dict, so a resumed run continues them),
updated in training mode only, on the device without a host synchronisation, and never by a
batch with a NaN or infinite input. In evaluation mode a call computes what mmdet's would
(this batch's counts included) without storing it.
"""
import warnings
from typing import Dict, Optional

import torch
from torch import Tensor

from ..functional import balancing as F
from ..reduction import check_avg_factor
from ..registry import MODELS
from ..validation import check_int, check_numbers, check_reduction
from .base import BaseLoss

__all__ = ['SeesawLoss', 'GHMC', 'GHMR', 'EQLV2Loss']


def _refuse_sigmoid(name: str, use_sigmoid, want: bool) -> None:
    if not isinstance(use_sigmoid, bool) or use_sigmoid != want:
        raise ValueError(f'use_sigmoid must be {want} for {name} (as in mmdet), got '
                         f'{use_sigmoid!r}')


def _restore_if_not_finite(module_name: str, state_dict: dict, key: str, initial) -> dict:
    """A state dict whose ``key`` is not finite (saved after a bad batch by another
    implementation) gets the initial value instead, with a RuntimeWarning. Reading the value
    syncs once per load, never on the training path; meta tensors load as they are."""
    value = state_dict.get(key)
    if isinstance(value, Tensor) and value.is_floating_point() \
            and value.device.type != 'meta' and not bool(torch.isfinite(value).all()):
        warnings.warn(f'{key} in the state dict is not finite; {module_name} restores its '
                      f'initial value', RuntimeWarning, stacklevel=3)
        state_dict = {**state_dict, key: initial(value)}
    return state_dict


@MODELS.register_module()
class SeesawLoss(BaseLoss):
    """Seesaw loss for long-tailed classification, mmdet's ``SeesawLoss`` (see
    :func:`mmdet_losses.functional.seesaw_loss`): for a foreground sample of class i, every
    other class j's logit is raised by ``log S_ij``, ``S_ij = M_ij C_ij``, with the
    mitigation ``M_ij = (N_j / N_i)^p`` where class j has fewer samples so far (``N_j <
    N_i``) and the compensation ``C_ij = (s_j / s_i)^q`` where j scores above i; plus a
    2-way objectness cross-entropy on the last two logits.

    The counts ``N`` are the buffer ``cum_samples`` (C + 1 entries, background last),
    increased by each training batch's labels before its loss is computed, as in mmdet (a
    scatter on the device, no host sync). With ``sync`` (default) the batch counts are summed
    over the ranks when torch.distributed is initialised, so every rank holds the same, global
    counts (mmdet's counts are per rank; ``sync=False`` keeps them so; it is a collective:
    every rank must call the loss equally often). A batch with a NaN or infinite ``pred`` or
    ``weight`` is not counted.

    The classifier interface mmdet's ``BBoxHead`` calls: ``custom_cls_channels`` (C + 2
    outputs, :meth:`get_cls_channels`), ``custom_activation`` (:meth:`get_activation`:
    class softmax times the foreground objectness, then the background objectness) and
    ``custom_accuracy`` (:meth:`get_accuracy`).

    Args:
        use_sigmoid: must be False (softmax), as in mmdet.
        p: mitigation exponent, >= 0 (0 switches it off).
        q: compensation exponent, >= 0 (0 switches it off).
        num_classes: C, without the background.
        eps: floor of the true class's score in the compensation ratio, > 0.
        return_dict: return ``{'loss_cls_objectness', 'loss_cls_classes'}`` (mmdet's default)
            instead of their sum.
        sync: sum the batch counts over the ranks under torch.distributed.

    Example:
        >>> loss = SeesawLoss(num_classes=2, return_dict=False)
        >>> pred = torch.tensor([[2.0, 1.0, 0.5, -0.5], [0.0, 0.0, -1.0, 1.0]])
        >>> loss(pred, torch.tensor([0, 2]))
        tensor(0.5334)
        >>> loss.cum_samples
        tensor([1., 0., 1.])
    """

    inputs = ('pred: logits (N, C + 2): C classes, then objectness (object, background); '
              'target: labels (N,) in [0, C], C the background')
    #: read by the drop-in table (docs/dropin.md)
    dropin_note = ("`cum_samples` is summed over the DDP ranks (`sync=True`; mmdet counts per "
                   "rank, `sync=False` keeps that); it is updated in training mode only, without "
                   "a host sync, and not by a batch with a NaN/inf pred or weight; "
                   "reduction 'none' gives (N,) per sample, the class term 0 for background "
                   "(mmdet: (num_pos,)) (docs/zoo_stateful.md).")
    # the functional form of :meth:`compute` (the summed loss with the stored counts); the
    # forward updates the counts and returns the two terms (seesaw_loss_parts)
    functional = F.seesaw_loss
    params = ('p', 'q', 'eps')
    repr_params = ('num_classes', 'p', 'q', 'eps', 'return_dict', 'sync')

    def __init__(self, use_sigmoid: bool = False, p: float = 0.8, q: float = 2.0,
                 num_classes: int = 1203, eps: float = 1e-2, reduction: str = 'mean',
                 loss_weight: float = 1.0, return_dict: bool = True, sync: bool = True):
        super().__init__(reduction, loss_weight)
        _refuse_sigmoid('SeesawLoss', use_sigmoid, False)
        self.use_sigmoid = False
        self.p, self.q, self.eps = F.check_seesaw_params(p, q, eps)
        self.num_classes = check_int('num_classes', num_classes)
        if self.num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.return_dict = bool(return_dict)
        self.sync = bool(sync)
        self.register_buffer('cum_samples', torch.zeros(self.num_classes + 1))
        self.custom_cls_channels = True
        self.custom_activation = True
        self.custom_accuracy = True

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        state_dict = _restore_if_not_finite('SeesawLoss', state_dict, prefix + 'cum_samples',
                                            torch.zeros_like)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def _check_channels(self, pred: Tensor) -> None:
        if not isinstance(pred, Tensor) or pred.dim() < 1 \
                or pred.shape[-1] != self.num_classes + 2:
            shape = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
            raise ValueError(f'pred must have num_classes + 2 = {self.num_classes + 2} '
                             f'channels (classes, then objectness), got {shape}')

    def _counts(self, pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> Tensor:
        """The class counts this call uses: the buffer plus this batch's labels (stored in
        training mode)."""
        batch = F.class_counts(target.to(self.cum_samples.device), self.num_classes + 1,
                               F.finite_batch(pred, weight).to(self.cum_samples.device))
        if not self.training:
            return self.cum_samples + batch
        F.all_reduce_if_distributed(batch, self.sync)
        self.cum_samples.add_(batch)
        return self.cum_samples

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None, **kwargs):
        """mmdet's call ``loss(cls_score, labels, label_weights, avg_factor=...,
        reduction_override=...)``: the dict of the two terms (or their sum), times
        ``loss_weight``."""
        reduction = self.reduction if reduction_override is None else check_reduction(
            reduction_override, 'reduction_override')
        self._check_channels(pred)
        F.check_seesaw_inputs(pred, target, weight)
        if avg_factor is not None:  # refused before the counts move
            check_avg_factor(avg_factor, pred.device)
            if reduction == 'sum':
                raise ValueError("reduction must be 'mean' or 'none' when avg_factor is "
                                 "given, got 'sum'")
        counts = self._counts(pred, target, weight)
        classes, objectness = F.seesaw_loss_parts(
            pred, target, weight, reduction, avg_factor,
            **{**self.functional_kwargs(), 'cum_samples': counts}, **kwargs)
        classes, objectness = self.loss_weight * classes, self.loss_weight * objectness
        if self.return_dict:
            return {'loss_cls_objectness': objectness, 'loss_cls_classes': classes}
        return classes + objectness

    def functional_kwargs(self) -> dict:
        """The stored counts (no update) with the parameters: :meth:`compute` is the summed
        loss of the functional form."""
        return {'cum_samples': self.cum_samples, **super().functional_kwargs()}

    def get_cls_channels(self, num_classes: int) -> int:
        """The classifier's output channels for ``num_classes`` classes: C + 2."""
        if num_classes != self.num_classes:
            raise ValueError(f'num_classes must be the loss\'s num_classes '
                             f'({self.num_classes}), got {num_classes}')
        return num_classes + 2

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Scores (..., C + 1): class softmax times the object probability, then the
        background probability."""
        self._check_channels(cls_score)
        classes = torch.softmax(cls_score[..., :-2], dim=-1)
        objectness = torch.softmax(cls_score[..., -2:], dim=-1)
        return torch.cat((classes * objectness[..., :1], objectness[..., 1:]), dim=-1)

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """Top-1 accuracies in percent, shape (1,): ``acc_objectness`` over every sample,
        ``acc_classes`` over the foreground samples (0 without any), as mmdet's."""
        self._check_channels(cls_score)
        with torch.no_grad():
            positive = labels < self.num_classes
            obj_hit = cls_score[..., -2:].argmax(-1) == (labels == self.num_classes).long()
            cls_hit = (cls_score[..., :-2].argmax(-1) == labels) & positive
            n_obj = max(labels.numel(), 1)
            n_pos = positive.sum().clamp(min=1).float()
            return {'acc_objectness': (obj_hit.sum().float() * (100.0 / n_obj)).reshape(1),
                    'acc_classes': (cls_hit.sum().float() * 100.0 / n_pos).reshape(1)}


class _GHM(BaseLoss):
    """GHM's shared state: the bin ``edges`` (kept as mmdet's buffer, so checkpoints load
    either way) and, with ``momentum``, the moving-average counts ``acc_sum``."""

    last_edge = 1.0
    params = ('bins', 'momentum')

    def __init__(self, bins, momentum, reduction, loss_weight):
        super().__init__(reduction, loss_weight)
        self.bins, self.momentum = F.check_ghm_args(bins, momentum)
        self.register_buffer('edges', F.ghm_edges(self.bins, self.last_edge))
        if self.momentum > 0:
            self.register_buffer('acc_sum', torch.zeros(self.bins))
        else:
            self.acc_sum = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        state_dict = _restore_if_not_finite(type(self).__name__, state_dict,
                                            prefix + 'acc_sum', torch.zeros_like)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def functional_kwargs(self) -> dict:
        """The parameters, the moving-average state and whether to update it."""
        return {**super().functional_kwargs(), 'acc_sum': self.acc_sum,
                'update': self.training}


@MODELS.register_module()
class GHMC(_GHM):
    """Gradient Harmonizing Mechanism classification loss, mmdet's ``GHMC`` (see
    :func:`mmdet_losses.functional.ghmc_loss`): sigmoid BCE weighted by ``T / (n GD(g))``,
    the inverse density of the gradient norm ``g = |sigmoid(x) - t|`` over ``bins`` bins.

    With ``momentum`` the bin counts are the moving average ``acc_sum`` (a buffer, updated in
    training mode). The bins are counted with tensor operations (no per-bin host sync), an
    empty bin gets weight 0 and an all-ignored batch gives 0, never NaN. ``avg_factor`` is
    accepted (mmdet's heads pass it) and checked, but, as in mmdet, the loss is normalised by
    the number of valid elements.

    Args:
        bins: number of bins of g, >= 1.
        momentum: of the moving average, in [0, 1); 0: the batch's own counts.
        use_sigmoid: must be True, as in mmdet.

    Example:
        >>> loss = GHMC(bins=4)
        >>> loss(torch.tensor([[2.0, -1.0], [0.5, 3.0]]), torch.tensor([0, 2]))
        tensor(1.1157)
    """

    inputs = ('pred: logits (N, C); target: binary targets (N, C) or labels (N,) with C the '
              'background; weight: 0 marks ignored elements')
    last_edge = 1 + 1e-6
    functional = F.ghmc_loss
    dropin_note = ("Bins counted with tensor ops (no host sync); `label_weight` multiplies the "
                   "loss and `!= 0` marks valid (mmdet: a `> 0` mask; the same for 0/1 "
                   "weights); 'sum' sums (mmdet raises); `momentum=1` is refused (mmdet: inf "
                   "weights); `acc_sum` moves in training mode only, never by a NaN/inf batch; "
                   "half pred computed in float32 (docs/zoo_stateful.md).")

    def __init__(self, bins: int = 10, momentum: float = 0.0, use_sigmoid: bool = True,
                 loss_weight: float = 1.0, reduction: str = 'mean'):
        super().__init__(bins, momentum, reduction, loss_weight)
        _refuse_sigmoid('GHMC', use_sigmoid, True)
        self.use_sigmoid = True



@MODELS.register_module()
class GHMR(_GHM):
    """Gradient Harmonizing Mechanism regression loss, mmdet's ``GHMR`` (see
    :func:`mmdet_losses.functional.ghmr_loss`): the Authentic Smooth L1 ``sqrt(d^2 + mu^2) -
    mu`` weighted by the inverse density of its gradient norm ``|d| / sqrt(d^2 + mu^2)``.

    State, bins and ``avg_factor`` as :class:`GHMC`.

    Args:
        mu: the ASL1 smoothing, > 0.
        bins: number of bins, >= 1.
        momentum: of the moving average, in [0, 1).

    Example:
        >>> loss = GHMR(bins=4)
        >>> loss(torch.tensor([[0.1, 0.0, -0.5, 0.02]]), torch.zeros(1, 4))
        tensor(0.0965)
    """

    inputs = 'pred and target: regression values of one shape (N, 4); weight: 0 marks ignored'
    last_edge = 1e3
    functional = F.ghmr_loss
    params = ('mu', 'bins', 'momentum')
    dropin_note = ("As GHMC; T is max(sum |weight|, 1) (mmdet: max(sum weight, 1)); `mu > 0` "
                   "(mmdet's mu=0 gives a NaN gradient at d = 0) (docs/zoo_stateful.md).")

    def __init__(self, mu: float = 0.02, bins: int = 10, momentum: float = 0.0,
                 loss_weight: float = 1.0, reduction: str = 'mean'):
        super().__init__(bins, momentum, reduction, loss_weight)
        self.mu = F.check_ghmr_mu(mu)



@MODELS.register_module()
class EQLV2Loss(BaseLoss):
    """Equalization Loss v2, mmdet's ``EQLV2Loss`` (see
    :func:`mmdet_losses.functional.eqlv2_loss`): sigmoid BCE over C + 1 columns with each
    class's positive and negative terms re-weighted by its accumulated gradient ratio
    ``pos_neg``, ``q_j = sigmoid(gamma (pos_neg_j - mu))`` for the negatives and ``1 +
    alpha (1 - q_j)`` for the positives.

    The buffers ``pos_grad``, ``neg_grad`` (sums of the per-class positive and negative
    gradient magnitudes ``|sigmoid(x) - t|`` times the EQLv2 weight, as mmdet's) and ``pos_neg
    = pos_grad / (neg_grad + 1e-10)`` (initially 100: every weight 1) are updated after each
    training call's loss, as in mmdet (which collects them in its forward), on the device. With
    ``use_distributed`` the batch's sums are all-reduced when torch.distributed is initialised
    (mmdet's flag; mmdet then requires it). A batch with a NaN or infinite ``pred`` or
    ``weight`` does not update them, nor does an empty batch (mmdet's resets ``pos_neg`` to 0
    there, damping every class's negatives). ``weight`` multiplies the loss and the statistics
    (mmdet ignores it: the same for the all-ones weights of its RoI heads); ``avg_factor`` is
    checked, not used, and ``class_weight`` and ``vis_grad`` are accepted and unused, as in
    mmdet.

    Args:
        use_sigmoid: must be True.
        num_classes: C; pred has C + 1 columns (the last one the background).
        gamma, mu: slope and centre of the mapping of ``pos_neg`` to ``q``.
        alpha: the positive weights' gain.
        test_with_obj: :meth:`get_activation` multiplies the class scores by ``1 - bg``.

    Example:
        >>> loss = EQLV2Loss(num_classes=2)
        >>> pred = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
        >>> loss(pred, torch.tensor([0, 2]))  # pos_neg 100: every weight 1, the BCE
        tensor(2.7738)
        >>> loss.pos_neg  # class 1 had no positive: its negatives will be damped
        tensor([0.2384, 0.0000])
    """

    inputs = 'pred: logits (N, C + 1), the last the background; target: labels (N,) in [0, C]'
    functional = F.eqlv2_loss
    params = ('gamma', 'mu', 'alpha')
    repr_params = ('num_classes', 'gamma', 'mu', 'alpha')
    dropin_note = ("`weight` multiplies the loss and the statistics, reductions 'none'/'sum' "
                   "are honoured (mmdet ignores weight and reduction; the same for the all-ones "
                   "label weights of its RoI heads); the statistics move in training mode only, "
                   "not for a NaN/inf or empty batch (docs/zoo_stateful.md).")

    def __init__(self, use_sigmoid: bool = True, reduction: str = 'mean', class_weight=None,
                 loss_weight: float = 1.0, num_classes: int = 1203,
                 use_distributed: bool = False, mu: float = 0.8, alpha: float = 4.0,
                 gamma: float = 12.0, vis_grad: bool = False, test_with_obj: bool = True):
        super().__init__(reduction, loss_weight)
        _refuse_sigmoid('EQLV2Loss', use_sigmoid, True)
        self.use_sigmoid = True
        check_numbers('class_weight', class_weight)
        self.class_weight = class_weight
        self.num_classes = check_int('num_classes', num_classes)
        if self.num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.use_distributed = bool(use_distributed)
        self.gamma, self.mu, self.alpha = F.check_eqlv2_params(gamma, mu, alpha)
        self.vis_grad = bool(vis_grad)
        self.test_with_obj = bool(test_with_obj)
        self.register_buffer('pos_grad', torch.zeros(self.num_classes))
        self.register_buffer('neg_grad', torch.zeros(self.num_classes))
        self.register_buffer('pos_neg', torch.full((self.num_classes,), 100.0))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        for key, initial in (('pos_grad', torch.zeros_like), ('neg_grad', torch.zeros_like),
                             ('pos_neg', lambda v: torch.full_like(v, 100.0))):
            state_dict = _restore_if_not_finite('EQLV2Loss', state_dict, prefix + key, initial)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def compute(self, pred, target, weight, reduction, avg_factor, **kwargs):
        if pred.dim() != 2 or pred.shape[1] != self.num_classes + 1:
            raise ValueError(f'pred must be (N, num_classes + 1 = {self.num_classes + 1}), '
                             f'got {tuple(pred.shape)}')
        loss = super().compute(pred, target, weight, reduction, avg_factor, **kwargs)
        if self.training:
            self._collect(pred, target, weight)
        return loss

    def _collect(self, pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> None:
        """Add this batch's gradient magnitudes (skipped, on the device, if not finite)."""
        if pred.shape[0] == 0:  # (a shape: no sync) mmdet's would set pos_neg 0 / 1e-10 = 0
            return
        onehot = torch.nn.functional.one_hot(target.long(), self.num_classes + 1)
        pos_w, neg_w = F.eqlv2_weights(self.pos_neg, self.gamma, self.mu, self.alpha,
                                       torch.float32)
        w = pos_w * onehot + neg_w * (1 - onehot)
        if weight is not None:
            w = w * (weight.float()[:, None] if weight.dim() == 1 else weight.float())
        pos, neg = F.eqlv2_gradient_stats(pred, onehot, w)
        stats = torch.stack((pos, neg))
        keep = F.finite_batch(pred, weight) & torch.isfinite(stats).all()
        stats = torch.where(keep, stats, torch.zeros_like(stats))
        F.all_reduce_if_distributed(stats, self.use_distributed)
        self.pos_grad.add_(stats[0])
        self.neg_grad.add_(stats[1])
        ratio = self.pos_grad / (self.neg_grad + 1e-10)
        self.pos_neg.copy_(torch.where(keep, ratio, self.pos_neg))

    def get_channel_num(self, num_classes: int) -> int:
        """mmdet's: the classifier's C + 1 outputs."""
        return num_classes + 1

    def get_activation(self, pred: Tensor) -> Tensor:
        """Sigmoid scores; with ``test_with_obj`` the class scores times ``1 - background``."""
        scores = torch.sigmoid(pred)
        if not self.test_with_obj:
            return scores
        return torch.cat((scores[:, :-1] * (1 - scores[:, -1:]), scores[:, -1:]), dim=1)

    def functional_kwargs(self) -> dict:
        return {'pos_neg': self.pos_neg, **super().functional_kwargs()}
