"""Registered distillation loss: ``KnowledgeDistillationKLDivLoss``, mmdet's class of that name
(LD and distillation configs); the maths lives in
:mod:`mmdet_losses.functional.distillation`."""
from typing import Optional

from torch import Tensor

from ..functional import distillation as F
from ..registry import MODELS
from .base import BaseLoss

__all__ = ['KnowledgeDistillationKLDivLoss']


@MODELS.register_module()
class KnowledgeDistillationKLDivLoss(BaseLoss):
    """Distillation KL divergence with mmdet's convention, the mean over classes::

        T^2 / C * sum_c q_c (log q_c - log p_c),  q = softmax(soft_label / T),
                                                  p = softmax(pred / T)

    per sample, ``soft_label`` (the teacher's logits) detached (see
    :func:`mmdet_losses.functional.knowledge_distillation_kl_div_loss`). :class:`KLDivLoss`
    is the same divergence summed over the classes. Called as mmdet's:
    ``loss(pred, soft_label, weight=None, avg_factor=None, reduction_override=None)``.

    Args:
        T: the temperature, > 0 (mmdet's asserts T >= 1).

    Reference: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.

    Example:
        >>> loss = KnowledgeDistillationKLDivLoss(T=1)
        >>> loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 2.0]]).log())
        tensor(0.0283)
    """

    #: read by the catalogue: a classification loss of logits, grouped with KLDivLoss
    family = 'classification'
    inputs = 'pred: student logits (N, C); soft_label: teacher logits (N, C)'
    #: read by the drop-in table (docs/dropin.md)
    dropin_note = 'Any `T > 0` is accepted (mmdet asserts `T >= 1`) (docs/zoo.md).'
    functional = F.knowledge_distillation_kl_div_loss
    params = ('T',)

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0, T: float = 10):
        super().__init__(reduction, loss_weight)
        self.T = F.check_distillation_temperature(T)

    def forward(self, pred: Tensor, soft_label: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None) -> Tensor:
        """``soft_label``: the teacher's logits, of pred's shape (mmdet's argument name)."""
        return super().forward(pred, soft_label, weight, avg_factor, reduction_override)
