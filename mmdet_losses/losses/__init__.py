"""Registered loss modules. Importing this package registers every one of them in
:data:`mmdet_losses.registry.MODELS`."""
from .association import *  # noqa: F401,F403
from .association import __all__ as _association
from .balancing import *  # noqa: F401,F403
from .balancing import __all__ as _balancing
from .base import BaseLoss
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
from .bounded_iou import BoundedIoULoss  # noqa: F401
from .dense import DiceLoss, GaussianFocalLoss  # noqa: F401
from .distillation import KnowledgeDistillationKLDivLoss  # noqa: F401
from .tracking import L2Loss, MarginL2Loss  # noqa: F401
from .custom_channels import CrossEntropyCustomLoss, FocalCustomLoss  # noqa: F401

__all__ = ['BaseLoss', *_regression, *_classification, *_metric, *_iou, *_interfaces, *_balancing,
           *_association,
           'DiceLoss', 'GaussianFocalLoss', 'KnowledgeDistillationKLDivLoss',
           'BoundedIoULoss', 'L2Loss', 'MarginL2Loss', 'CrossEntropyCustomLoss',
           'FocalCustomLoss']
