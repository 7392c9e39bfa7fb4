"""Compatibility of mmengine 0.10.7 with torch >= 2.6, for this repository's tools.

The fix itself lives in the package, where users import it too:
:func:`mmdet_losses.compat.patch_checkpoint_loading` (mmengine's own checkpoints under
torch >= 2.6: ``--resume``, ``load_from``, ``tools/test.py CHECKPOINT``).

(mmengine's other break on new packages, ``mmdet::`` config bases needing ``pkg_resources``, is
avoided by requirements.txt pinning setuptools below 81.)
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _ROOT not in sys.path:  # a checkout that is not pip-installed
    sys.path.append(_ROOT)

from mmdet_losses.compat import load_from_local_trusted, patch_checkpoint_loading  # noqa: E402

load_local_checkpoint = load_from_local_trusted  # the name this module used before

__all__ = ['load_from_local_trusted', 'load_local_checkpoint', 'patch_checkpoint_loading']
