"""Importing this module applies :func:`mmdet_losses.compat.patch_checkpoint_loading`: mmengine
then loads local checkpoint files under torch >= 2.6 (``weights_only=False``; only for
checkpoints you trust). Meant for a config's ``custom_imports``::

    custom_imports = dict(
        imports=['mmdet_losses', 'mmdet_losses.compat.torch_load'],
        allow_failed_imports=False)
"""
from . import patch_checkpoint_loading

patch_checkpoint_loading()
