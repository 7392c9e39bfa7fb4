"""The registry every loss of this package registers in.

``MODELS`` is a child of mmengine's root ``MODELS`` with scope ``mmdet_losses``, so mmdet's
registry (another child of the same root) finds our classes by a scoped name:
``dict(type='mmdet_losses.CIoULoss')`` builds :class:`mmdet_losses.CIoULoss` from any
OpenMMLab config. ``locations`` lets mmengine import the loss modules on first look-up, so the
scoped name works even without ``custom_imports``.

A scoped name that names nothing (``mmdet_losses.CIOULoss``) raises a ``KeyError`` that names
the close matches, where mmengine would raise its bare "... is not in the registry".
"""
import difflib
import sys
from typing import List, Sequence

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry
from mmengine.utils import get_object_from_string

SCOPE = 'mmdet_losses'


def close_matches(name: str, candidates: Sequence[str], n: int = 3) -> List[str]:
    """The names of ``candidates`` closest to ``name``: a match that differs only in case
    first, then :func:`difflib.get_close_matches` (cutoff 0.6)."""
    candidates = list(candidates)
    folded = [c for c in candidates if c.lower() == name.lower() and c != name]
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    return (folded + [c for c in close if c not in folded])[:n]


def _building(depth: int = 12) -> bool:
    """Whether mmengine's ``build_from_cfg`` is among the callers (the look-up is a build,
    whose miss mmengine turns into a bare KeyError), not a probe such as ``name in MODELS``."""
    frame = sys._getframe(2)
    while frame is not None and depth > 0:
        if (frame.f_code.co_name == 'build_from_cfg'
                and frame.f_globals.get('__name__', '').startswith('mmengine.registry')):
            return True
        frame, depth = frame.f_back, depth - 1
    return False


class _ScopedRegistry(Registry):
    """mmengine's ``Registry``, except that when a build misses a plain class name in this
    scope (the look-up mmengine's root makes for ``'mmdet_losses.Name'``), a ``KeyError`` names
    the close matches. Everything else is mmengine's: names found, dotted import paths
    (``'mmdet_losses.losses.iou.CIoULoss'``), other scopes, and ``None`` for a miss outside a
    build (``'mmdet_losses.Name' in MODELS`` stays False)."""

    def get(self, key):
        found = super().get(key)
        if found is not None or not isinstance(key, str):
            return found
        scope, name = self.split_scope_key(key)
        if scope not in (None, self.scope) or not name.isidentifier() or not _building():
            return found
        if get_object_from_string(f'{self.scope}.{name}') is not None:
            return found  # an attribute of the package: mmengine's caller finds it
        matches = close_matches(name, list(self.module_dict))
        hint = (f'; did you mean {" or ".join(f"{self.scope}.{m}" for m in matches)}?'
                if matches else '')
        raise KeyError(f'{self.scope}.{name} is not registered in {self.scope}.MODELS{hint} '
                       f'(`python -m {self.scope} list` shows every loss)')


MODELS = _ScopedRegistry(
    'model',
    parent=MMENGINE_MODELS,
    scope=SCOPE,
    locations=['mmdet_losses.losses', 'mmdet_losses.ops'])

__all__ = ['MODELS', 'close_matches']
