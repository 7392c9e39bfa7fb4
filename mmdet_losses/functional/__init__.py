"""Functional forms of every loss: pure tensor maths, no registry.

Each is ``fn(pred, target, weight=None, reduction='mean', avg_factor=None, **params)`` and
``reduction='none'`` returns the element-wise loss.
"""
from .association import *  # noqa: F401,F403
from .association import __all__ as _association
from .balancing import *  # noqa: F401,F403
from .balancing import __all__ as _balancing
from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification
from .iou import *  # noqa: F401,F403
from .iou import __all__ as _iou
from .interfaces import *  # noqa: F401,F403
from .interfaces import __all__ as _interfaces
from .metric import *  # noqa: F401,F403
from .metric import __all__ as _metric
from .regression import *  # noqa: F401,F403
from .regression import __all__ as _regression
from .bounded_iou import bounded_iou_loss  # noqa: F401
from .dense import dice_loss, gaussian_focal_loss  # noqa: F401
from .distillation import knowledge_distillation_kl_div_loss  # noqa: F401
from .tracking import margin_l2_loss  # noqa: F401

__all__ = [*_regression, *_classification, *_metric, *_iou, *_interfaces, *_balancing,
           *_association,
           'dice_loss', 'gaussian_focal_loss', 'knowledge_distillation_kl_div_loss',
           'bounded_iou_loss', 'margin_l2_loss']
