"""The registry every loss of this package registers in.

``MODELS`` is a child of mmengine's root ``MODELS`` with scope ``mmdet_losses``, so mmdet's
registry (another child of the same root) finds our classes by a scoped name:
``dict(type='mmdet_losses.CIoULoss')`` builds :class:`mmdet_losses.CIoULoss` from any
OpenMMLab config. ``locations`` lets mmengine import the loss modules on first look-up, so the
scoped name works even without ``custom_imports``.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmdet_losses',
    locations=['mmdet_losses.losses', 'mmdet_losses.ops'])

__all__ = ['MODELS']
