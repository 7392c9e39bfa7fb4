"""Opt-in fixes for mmengine 0.10.x under newer PyTorch, for mmdet's stock tools as for ours.

**Checkpoints under torch >= 2.6.** ``torch.load`` defaults to ``weights_only=True`` since
torch 2.6, and mmengine 0.10.7's loader does not say otherwise, so mmengine refuses its own
checkpoints (they hold the message hub's ``HistoryBuffer`` objects and numpy values): mmdet's
``tools/test.py CONFIG CHECKPOINT``, ``load_from`` and ``--resume`` stop with ``Weights only
load failed``. :func:`patch_checkpoint_loading` makes mmengine load *local* checkpoint files
(a path the user names) with ``weights_only=False``, as mmengine expects; downloads
(``http(s)://``, ``modelzoo://``) keep torch's default. Loading with ``weights_only=False``
unpickles the file, which can run code: apply it only for checkpoints you trust (your own).

Opt in from Python::

    from mmdet_losses.compat import patch_checkpoint_loading
    patch_checkpoint_loading()

or from a config, so that mmdet's own ``tools/test.py`` and ``tools/train.py`` apply it when
they load the config (``custom_imports`` are imported by ``Config.fromfile``)::

    custom_imports = dict(
        imports=['mmdet_losses', 'mmdet_losses.compat.torch_load'],
        allow_failed_imports=False)

Importing ``mmdet_losses`` alone (or this module) changes nothing. This package's
``tools/train.py`` and ``tools/test.py`` apply the patch themselves.
"""
import os.path as osp

import torch

__all__ = ['load_from_local_trusted', 'patch_checkpoint_loading', 'unpatch_checkpoint_loading',
           'checkpoint_loading_patched']

_LOCAL = ''  # mmengine's CheckpointLoader prefix for a plain file path
_previous = []  # the loader the patch replaced, for unpatch_checkpoint_loading


def load_from_local_trusted(filename, map_location=None):
    """mmengine's loader for local checkpoint files, with ``weights_only=False``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def _schemes():
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader, CheckpointLoader._schemes


def checkpoint_loading_patched() -> bool:
    """Whether mmengine loads local checkpoint files with :func:`load_from_local_trusted`."""
    return _schemes()[1].get(_LOCAL) is load_from_local_trusted


def patch_checkpoint_loading() -> None:
    """Make mmengine load local checkpoint files as it did before torch 2.6 (see the module
    docstring). Idempotent; :func:`unpatch_checkpoint_loading` undoes it."""
    loader, schemes = _schemes()
    if schemes.get(_LOCAL) is load_from_local_trusted:
        return
    _previous.append(schemes.get(_LOCAL))
    loader.register_scheme(prefixes=_LOCAL, loader=load_from_local_trusted, force=True)


def unpatch_checkpoint_loading() -> None:
    """Give mmengine its own local-file loader back (a no-op where nothing is patched)."""
    loader, schemes = _schemes()
    if schemes.get(_LOCAL) is not load_from_local_trusted or not _previous:
        return
    previous = _previous.pop()
    if previous is not None:
        loader.register_scheme(prefixes=_LOCAL, loader=previous, force=True)
