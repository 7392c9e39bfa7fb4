"""Compatibility of mmengine 0.10.7 with torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine's own
checkpoints (they hold the message hub's ``HistoryBuffer`` objects and numpy scalars), so
``--resume`` and ``load_from`` fail. :func:`patch_checkpoint_loading` makes mmengine's loader
for local files (a checkpoint the user names) load them as mmengine expects; downloads keep
torch's default.

(mmengine's other break on new packages, ``mmdet::`` config bases needing ``pkg_resources``, is
avoided by requirements.txt pinning setuptools below 81.)
"""
import os.path as osp

import torch


def load_local_checkpoint(filename, map_location):
    """mmengine's loader for local checkpoint files, with ``weights_only=False``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loading():
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
