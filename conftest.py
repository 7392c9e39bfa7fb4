"""Root conftest: the names every docstring example may use without importing them, and
isolation of mmengine's global default scope between tests."""
import pytest
import torch


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
