"""mmdet_losses: every loss a detector, classifier or embedding head is trained with, for
MMDetection 3.x. Importing the package registers every loss in :data:`MODELS` (scope
``mmdet_losses``), so a config builds them as ``dict(type='mmdet_losses.CIoULoss', ...)``."""
from . import functional
from .boxes import *  # noqa: F401,F403
from .boxes import __all__ as _boxes
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops
from .reduction import reduce_loss, weight_reduce_loss
from .registry import MODELS

__version__ = '0.1.0'

__all__ = ['MODELS', 'functional', 'reduce_loss', 'weight_reduce_loss', *_losses, *_boxes,
           *_ops]
