"""Root conftest: the names every docstring example may use without importing them, and
isolation of mmengine's global default scope between tests."""
import os

# Triton's interpreter runs the GPU kernels (mmdet_losses/ops/gpu/) on CPU tensors; it must be
# chosen before a kernel is defined, and only those modules (imported lazily) read it.
os.environ.setdefault('TRITON_INTERPRET', '1')

import pytest
import torch

try:  # hypothesis (requirements-dev.txt) drives tests/test_contract.py's property tests
    from hypothesis import Phase as _Phase
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - the other modules do not need it
    _hypothesis_settings = None
else:
    # Deterministic in CI: the same examples every run, nothing remembered between runs, a
    # bounded number of examples (each test may lower it), no per-example deadline (the first
    # call of a kernel pays its set-up), and no shrinking (a failure is reported as found,
    # within the time budget). HYPOTHESIS_PROFILE=explore searches wider and shrinks, locally.
    _hypothesis_settings.register_profile(
        'mmdet_losses', derandomize=True, database=None, max_examples=30, deadline=None,
        print_blob=True, phases=(_Phase.explicit, _Phase.generate))
    _hypothesis_settings.register_profile(
        'explore', derandomize=False, database=None, max_examples=1000, deadline=None)
    _hypothesis_settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'mmdet_losses'))


# Importing this module is the opt-in that patches mmengine's checkpoint loading: doctest
# collection must not do it for the whole session (tests/test_compat.py imports it on purpose).
collect_ignore = ['mmdet_losses/compat/torch_load.py']
# The GPU kernels' modules import Triton (the test extra, requirements-gpu-test.txt); without
# it their doctests cannot be collected, and their tests skip.
try:
    import triton  # noqa: F401
except ImportError:  # pragma: no cover - tools/test.sh installs it
    collect_ignore_glob = ['mmdet_losses/ops/gpu/[!_]*.py']


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import mmdet_losses
    doctest_namespace['torch'] = torch
    doctest_namespace['mmdet_losses'] = mmdet_losses
    doctest_namespace['F'] = mmdet_losses.functional


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """An mmengine Runner leaves its DefaultScope ('mmdet') behind as a process-wide global,
    under which an unscoped ``MODELS.build(dict(type='CIoULoss'))`` resolves to mmdet's class.
    Each test starts from, and leaves, the scopes it found."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
