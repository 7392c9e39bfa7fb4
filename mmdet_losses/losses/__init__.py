"""Registered loss modules. Importing this package registers every one of them in
:data:`mmdet_losses.registry.MODELS`."""
from .base import BaseLoss
from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification
from .iou import *  # noqa: F401,F403
from .iou import __all__ as _iou
from .metric import *  # noqa: F401,F403
from .metric import __all__ as _metric
from .regression import *  # noqa: F401,F403
from .regression import __all__ as _regression

__all__ = ['BaseLoss', *_regression, *_classification, *_metric, *_iou]
