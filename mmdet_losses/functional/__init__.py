"""Functional forms of every loss: pure tensor maths, no registry.

Each is ``fn(pred, target, weight=None, reduction='mean', avg_factor=None, **params)`` and
``reduction='none'`` returns the element-wise loss.
"""
from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification
from .iou import *  # noqa: F401,F403
from .iou import __all__ as _iou
from .metric import *  # noqa: F401,F403
from .metric import __all__ as _metric
from .regression import *  # noqa: F401,F403
from .regression import __all__ as _regression

__all__ = [*_regression, *_classification, *_metric, *_iou]
