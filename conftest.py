"""Root conftest: the names every docstring example may use without importing them, and
isolation of mmengine's global default scope between tests."""
import os

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
