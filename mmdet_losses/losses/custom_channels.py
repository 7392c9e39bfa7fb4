"""V3Det's custom-channel losses, drop-ins for mmdet's ``CrossEntropyCustomLoss`` and
``FocalCustomLoss``: the losses of :class:`CrossEntropyLoss` and :class:`FocalLoss` plus the
classifier interface mmdet's ``BBoxHead`` calls (``custom_cls_channels``,
``custom_activation``, ``custom_accuracy``)."""
from typing import Dict, Optional

import torch
from torch import Tensor

from ..registry import MODELS
from ..validation import check_int
from .classification import CrossEntropyLoss, FocalLoss

__all__ = ['CrossEntropyCustomLoss', 'FocalCustomLoss']


class _CustomClassifier:
    """What both classes add to their loss: ``num_classes`` and the classifier interface
    mmdet's ``BBoxHead`` calls (the flags, the channel check, the accuracy, the repr)."""

    def _set_num_classes(self, num_classes: int) -> None:
        self.num_classes = check_int('num_classes', num_classes)
        if self.num_classes < 1:
            raise ValueError(f'num_classes must be >= 1 (the number of classes, required), '
                             f'got {num_classes}')
        self.custom_cls_channels = True
        self.custom_activation = True
        self.custom_accuracy = True

    def _check_num_classes(self, num_classes: int) -> None:
        if num_classes != self.num_classes:
            raise ValueError(f"num_classes must be the loss's num_classes ({self.num_classes})"
                             f', got {num_classes}')

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``{'acc_classes'}``: top-1 accuracy in percent of the class logits over the
        foreground samples, shape (1,) (a 0-dim 0 without any, as mmdet's)."""
        self._check_scores(cls_score)
        with torch.no_grad():
            positive = labels < self.num_classes
            n_pos = positive.sum()
            hits = ((cls_score[:, :self.num_classes].argmax(1) == labels) & positive).sum()
            if cls_score.shape[0] == 0:
                return {'acc_classes': cls_score.new_tensor(0.)}
            acc = hits.float() * 100.0 / n_pos.clamp(min=1).float()  # float32, as mmdet's
            return {'acc_classes': acc.reshape(1)}

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, {super().extra_repr()}'


@MODELS.register_module()
class CrossEntropyCustomLoss(_CustomClassifier, CrossEntropyLoss):
    """Cross-entropy with the classifier interface of mmdet's ``CrossEntropyCustomLoss``
    (V3Det). The loss is :class:`CrossEntropyLoss`'s: softmax ``-log softmax(x)_y`` over
    C + 1 logits (background last), or with ``use_sigmoid`` the binary cross-entropy over C
    logits, weighted and reduced as there.

    The head's classifier has :meth:`get_cls_channels` outputs (C + 1 with softmax, C with
    sigmoid); :meth:`get_activation` gives scores (N, C + 1): the softmax of the C class
    logits and the last logit, or ``sigmoid(x_c)`` then ``clamp(1 - sum_c sigmoid(x_c), 0,
    1)`` as the background; :meth:`get_accuracy` the top-1 accuracy (percent, shape (1,)) of
    the C class logits over the foreground samples.

    Args:
        num_classes: C, without the background (required keyword, >= 1).
        use_sigmoid, use_mask, class_weight, ignore_index, avg_non_ignore: as
            :class:`CrossEntropyLoss` (not both ``use_sigmoid`` and ``use_mask``).

    Reference: Wang et al., "V3Det: Vast Vocabulary Visual Detection Dataset", ICCV 2023.

    Example:
        >>> loss = CrossEntropyCustomLoss(num_classes=2)
        >>> loss.get_cls_channels(2)
        3
        >>> loss(torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 2]))
        tensor(0.6691)
    """

    #: read by the drop-in table (docs/dropin.md)
    dropin_note = ('`num_classes` is a required keyword argument (mmdet: default -1, then an '
                   'assertion), and the arguments after `reduction` are keyword-only, as every '
                   'config passes them; errors are ValueError instead of AssertionError.')

    inputs = ('pred: logits (N, C + 1) (softmax, background last) or (N, C) (use_sigmoid); '
              'target: labels (N,) in [0, C], C the background')
    # CrossEntropyLoss's, less label_smoothing (not an argument here: the functional form's 0)
    params = ('class_weight', 'ignore_index', 'avg_non_ignore', 'use_sigmoid', 'use_mask')

    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False,
                 reduction: str = 'mean', *, num_classes: int, class_weight=None,
                 ignore_index: Optional[int] = None, loss_weight: float = 1.0,
                 avg_non_ignore: bool = False):
        if use_sigmoid is not False and use_mask is not False:
            raise ValueError(f'use_sigmoid and use_mask exclude each other, got '
                             f'use_sigmoid={use_sigmoid!r}, use_mask={use_mask!r}')
        super().__init__(use_sigmoid=use_sigmoid, use_mask=use_mask, class_weight=class_weight,
                         ignore_index=ignore_index, avg_non_ignore=avg_non_ignore,
                         reduction=reduction, loss_weight=loss_weight)
        self._set_num_classes(num_classes)

    def _check_scores(self, cls_score: Tensor) -> None:
        if not isinstance(cls_score, Tensor) or cls_score.dim() != 2 \
                or cls_score.shape[1] < self.num_classes + (0 if self.use_sigmoid else 1):
            shape = tuple(cls_score.shape) if isinstance(cls_score, Tensor) \
                else type(cls_score).__name__
            raise ValueError(f'cls_score must be (N, {self.get_cls_channels(self.num_classes)})'
                             f' logits, got {shape}')

    def get_cls_channels(self, num_classes: int) -> int:
        """The classifier's outputs for ``num_classes`` classes: C + 1 (softmax) or C."""
        self._check_num_classes(num_classes)
        return num_classes if self.use_sigmoid else num_classes + 1

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Scores (N, C + 1), background last."""
        self._check_scores(cls_score)
        classes = cls_score[:, :self.num_classes]
        if not self.use_sigmoid:
            return torch.softmax(torch.cat((classes, cls_score[:, -1:]), dim=1), dim=1)
        probs = classes.sigmoid()
        background = (1 - probs.sum(dim=1, keepdim=True)).clamp(0, 1)
        return torch.cat((probs, background), dim=1)



@MODELS.register_module()
class FocalCustomLoss(_CustomClassifier, FocalLoss):
    """Sigmoid focal loss with the classifier interface of mmdet's ``FocalCustomLoss``
    (V3Det): :class:`FocalLoss`'s value ``-alpha_t (1 - p_t)^gamma log p_t`` over C logits,
    labels (N,) with C the background (all-negative row).

    :meth:`get_cls_channels` is C; :meth:`get_activation` ``sigmoid`` of the C class logits
    (N, C); :meth:`get_accuracy` the top-1 accuracy (percent) over the foreground samples.

    Args:
        num_classes: C (required keyword, >= 1).
        gamma, alpha: as :class:`FocalLoss`.
        activated: must be False (mmdet's class ignores it and reads logits; refused here
            rather than silently computing another loss).

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017; Wang et al.,
    "V3Det: Vast Vocabulary Visual Detection Dataset", ICCV 2023.

    Example:
        >>> loss = FocalCustomLoss(num_classes=2, reduction='sum')
        >>> loss(torch.zeros(1, 2), torch.tensor([2]))
        tensor(0.2599)
    """

    inputs = 'pred: logits (N, C); target: labels (N,) in [0, C], C the background'
    #: read by the drop-in table (docs/dropin.md)
    dropin_note = ('`num_classes` is a required keyword argument (mmdet: default -1, then an '
                   'assertion); `activated=True` is refused (mmdet ignores it and reads '
                   'logits); errors are ValueError instead of AssertionError.')

    def __init__(self, use_sigmoid: bool = True, *, num_classes: int, gamma: float = 2.0,
                 alpha: float = 0.25, reduction: str = 'mean', loss_weight: float = 1.0,
                 activated: bool = False):
        if activated is not False:
            raise ValueError(f'activated must be False for FocalCustomLoss (mmdet\'s reads '
                             f'logits whatever it says), got {activated!r}')
        super().__init__(use_sigmoid=use_sigmoid, gamma=gamma, alpha=alpha, activated=False,
                         reduction=reduction, loss_weight=loss_weight)
        self._set_num_classes(num_classes)

    def _check_scores(self, cls_score: Tensor) -> None:
        if not isinstance(cls_score, Tensor) or cls_score.dim() != 2 \
                or cls_score.shape[1] < self.num_classes:
            shape = tuple(cls_score.shape) if isinstance(cls_score, Tensor) \
                else type(cls_score).__name__
            raise ValueError(f'cls_score must be (N, {self.num_classes}) logits, got {shape}')

    def get_cls_channels(self, num_classes: int) -> int:
        """The classifier's outputs: C."""
        self._check_num_classes(num_classes)
        return num_classes

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Scores (N, C): the sigmoid of the class logits."""
        self._check_scores(cls_score)
        return cls_score[:, :self.num_classes].sigmoid()
