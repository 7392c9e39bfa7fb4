"""Classification losses (functional forms): the cross-entropy family, the focal family, margin
losses, KL distillation and the 0-1 loss. Each is
``fn(pred, target, weight=None, reduction='mean', avg_factor=None, **params)`` (the mask-head
``mask_cross_entropy_loss`` takes the RoIs' class labels in weight's place, as mmdet's does);
pred are logits unless ``activated=True`` where a loss takes it. The code lives in
``cls_entropy.py``, ``cls_focal.py`` and ``cls_margin.py``; this module is the public face."""
from .cls_entropy import (balanced_cross_entropy_loss, binary_cross_entropy_loss,
                          cross_entropy_loss, kl_div_loss, mask_cross_entropy_loss)
from .cls_focal import (distribution_focal_loss, focal_loss, quality_focal_loss,
                        sigmoid_focal_loss, softmax_focal_loss, varifocal_loss)
from .cls_margin import exponential_loss, hinge_loss, logistic_loss, zero_one_loss

__all__ = ['cross_entropy_loss', 'binary_cross_entropy_loss', 'mask_cross_entropy_loss',
           'balanced_cross_entropy_loss', 'focal_loss', 'sigmoid_focal_loss',
           'softmax_focal_loss', 'varifocal_loss',
           'quality_focal_loss', 'distribution_focal_loss', 'logistic_loss', 'hinge_loss',
           'exponential_loss', 'kl_div_loss', 'zero_one_loss']
