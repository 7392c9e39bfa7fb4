"""Root conftest: the names every docstring example may use without importing them."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import mmdet_losses
    doctest_namespace['torch'] = torch
    doctest_namespace['mmdet_losses'] = mmdet_losses
    doctest_namespace['F'] = mmdet_losses.functional
