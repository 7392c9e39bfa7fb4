"""Registered association losses: QDTrack's multi-positive cross-entropy (multi-object
tracking) and CornerNet's associative embedding loss; the maths lives in
:mod:`mmdet_losses.functional.association`."""
from typing import Optional

from torch import Tensor

from ..functional import association as F
from ..registry import MODELS
from ..validation import compute_dtype
from .base import BaseLoss

__all__ = ['MultiPosCrossEntropyLoss', 'AssociativeEmbeddingLoss']


@MODELS.register_module()
class MultiPosCrossEntropyLoss(BaseLoss):
    """QDTrack's multi-positive cross-entropy, mmdet's ``MultiPosCrossEntropyLoss`` (see
    :func:`mmdet_losses.functional.multi_pos_cross_entropy_loss`): per row of similarities,
    ``log(1 + sum_{p, n} exp(s_n - s_p))`` over its positives p and negatives n.

    Example:
        >>> loss = MultiPosCrossEntropyLoss()
        >>> pred = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
        >>> loss(pred, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
        tensor(0.2952)
    """

    inputs = ('pred: similarity logits (N, M); target: (N, M), 1 positive, 0 negative, '
              'other values ignored')
    functional = F.multi_pos_cross_entropy_loss


@MODELS.register_module()
class AssociativeEmbeddingLoss(BaseLoss):
    """CornerNet's pull and push losses of the corner embeddings, mmdet's
    ``AssociativeEmbeddingLoss`` (see :func:`mmdet_losses.functional.associative_embedding_terms`)::

        e_k = (tl_k + br_k) / 2
        pull = pull_weight * sum_images 1/n sum_k (tl_k - e_k)^2 + (br_k - e_k)^2
        push = push_weight * sum_images 1/(n (n-1)) sum_{k != j} relu(1 - |e_k - e_j|)

    over the n objects of each image (push 0 for an image with fewer than two). Two forms:

    - mmdet's (``CornerHead`` calls it so): ``loss(tl_emb, br_emb, match)`` with the
      embedding maps (B, C, H, W) and ``match`` the per-image lists of
      ``[[tl_y, tl_x], [br_y, br_x]]`` corner positions; returns ``(pull, push)``, each
      times ``loss_weight``. As in mmdet's, each of the C channels is an embedding of its
      own. ``reduction`` does not apply (both are sums over the images, as mmdet's).
    - per object, as every loss: ``loss(pred, target, weight=None, avg_factor=None,
      reduction_override=None, image_ids=None)`` with the corner embeddings pred (N,) (top
      left) and target (N,) (bottom right) and ``image_ids`` (N,) the image of each (None:
      one image); returns ``loss_weight * (pull_weight pull_k + push_weight push_k)``
      reduced (:func:`mmdet_losses.functional.associative_embedding_loss`; 'sum' is
      mmdet's ``pull + push``).

    All pairs of a batch are formed at once: no Python loop over images or objects and no
    host synchronisation (mmdet's loops over both).

    Args:
        pull_weight: factor of the pull loss.
        push_weight: factor of the push loss.

    Reference: Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018.

    Example:
        >>> loss = AssociativeEmbeddingLoss()
        >>> tl, br = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
        >>> tl[0, 0, 0, 0], br[0, 0, 3, 3], br[0, 0, 2, 2] = 0.5, 0.3, 2.0
        >>> loss(tl, br, [[[[0, 0], [3, 3]], [[1, 1], [2, 2]]]])
        (tensor(0.2525), tensor(0.1000))
    """

    inputs = ('pred, target: top-left and bottom-right corner embedding maps (B, C, H, W) '
              "with match (mmdet's form), or the corner embeddings of N objects (N,)")
    #: read by the drop-in table (docs/dropin.md); docs/zoo.md says more
    dropin_note = ("Same values and gradients. The maps are read only at the matched "
                   "corners: a NaN elsewhere does not reach the loss (mmdet's multiplies the "
                   "whole map's sum by 0 for an image with fewer than two objects, which "
                   "turns such a NaN into a NaN loss), while a NaN corner embedding makes the "
                   "push of its whole image NaN; a batch of no image gives zero tensors in "
                   "the graph (mmdet's: Python floats). It also takes `reduction` and "
                   "`loss_weight`, and a per-object form (docs/zoo.md).")
    functional = F.associative_embedding_loss
    params = ('pull_weight', 'push_weight')

    def __init__(self, pull_weight: float = 0.25, push_weight: float = 0.25,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.pull_weight, self.push_weight = F.check_associative_embedding_weights(
            pull_weight, push_weight)

    def forward(self, pred: Tensor, target: Tensor, match=None, avg_factor=None,
                reduction_override: Optional[str] = None, image_ids: Optional[Tensor] = None,
                weight: Optional[Tensor] = None):
        """mmdet's form when ``match`` is a list (or tuple); otherwise the per-object form,
        with the third positional argument the ``weight`` (N,) as for every loss."""
        if isinstance(match, (list, tuple)):
            given = [k for k, v in dict(weight=weight, avg_factor=avg_factor,
                                        reduction_override=reduction_override,
                                        image_ids=image_ids).items() if v is not None]
            if given:
                raise TypeError("with match (mmdet's form) the loss takes no weight, "
                                'avg_factor, reduction_override or image_ids (arguments of '
                                f'the per-object form), got {", ".join(given)}')
            return self._pull_push(pred, target, match)
        if match is not None:
            if not isinstance(match, Tensor):
                raise TypeError(f'match must be a list (one entry per image) of '
                                f'[[tl_y, tl_x], [br_y, br_x]] lists, or the third argument '
                                f'a weight tensor, got {type(match).__name__}')
            if weight is not None:
                raise TypeError('weight given twice: as the third argument and as weight=')
            weight = match
        return super().forward(pred, target, weight, avg_factor, reduction_override,
                               image_ids=image_ids)

    def _pull_push(self, pred: Tensor, target: Tensor, match):
        top_left, bottom_right, image_ids = F.corner_embeddings(pred, target, match)
        dtype = compute_dtype(pred)
        pull, push = F.associative_embedding_terms(top_left.to(dtype), bottom_right.to(dtype),
                                                   image_ids)
        scale = self.loss_weight
        return ((scale * self.pull_weight * pull.sum()).to(pred.dtype),
                (scale * self.push_weight * push.sum()).to(pred.dtype))
