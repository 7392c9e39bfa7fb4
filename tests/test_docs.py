"""The documentation standard: every public class and function of the package documents itself
with a runnable example whose output is checked (pytest runs the examples themselves with
--doctest-modules, see pytest.ini)."""
import doctest
import inspect

import pytest

import mmdet_losses


def _public(module, prefix):
    for name in module.__all__:
        obj = getattr(module, name)
        # abstract bases (BaseLoss) cannot be called in an example; modules and registries
        # (functional, MODELS) are not functions or classes
        if (inspect.isclass(obj) and not inspect.isabstract(obj)) or inspect.isfunction(obj):
            yield pytest.param(obj, id=f'{prefix}{name}')


PUBLIC = [*_public(mmdet_losses, ''), *_public(mmdet_losses.functional, 'functional.')]


@pytest.mark.parametrize('obj', PUBLIC)
def test_public_api_has_a_docstring_with_a_runnable_example(obj):
    doc = inspect.getdoc(obj)
    assert doc, f'{obj.__qualname__} has no docstring'
    assert 'Example' in doc, f'{obj.__qualname__}: no Example: section'
    tests = doctest.DocTestFinder(recurse=False).find(obj, obj.__name__, globs={})
    examples = [example for test in tests for example in test.examples]
    assert examples, f'{obj.__qualname__}: no >>> example for doctest to run'
    assert any(example.want.strip() for example in examples), \
        f'{obj.__qualname__}: no example shows an output to check'


def test_the_package_exports_the_registered_losses():
    registered = set(mmdet_losses.MODELS.module_dict)
    assert registered <= set(mmdet_losses.__all__)
    assert len(PUBLIC) > len(registered)  # the functional forms are checked as well
