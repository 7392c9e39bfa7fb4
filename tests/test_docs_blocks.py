"""Every Python code block of the README and of docs/ runs, so an example cannot go stale:

- each ```python block is executed in a fresh namespace;
- every loss config it defines (a dict, at any depth, whose ``type`` is ``mmdet_losses.X``) is
  built through the registry, so a renamed class or argument fails here;
- a statement followed by a comment that shows a tensor (``expr  # tensor([0.6667], ...)``)
  is evaluated and its values compared with the ones the comment shows.
"""
import ast
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]
BLOCK = re.compile(r'^```python\n(.*?)^```', re.S | re.M)
SHOWN_TENSOR = re.compile(r'#\s*tensor\((\[?[-0-9.,\s\[\]e]+\]?)')


def _blocks():
    for path in DOCS:
        text = path.read_text(encoding='utf-8')
        for match in BLOCK.finditer(text):
            line = text[:match.start()].count('\n') + 1
            yield pytest.param(match.group(1), id=f'{path.relative_to(ROOT)}:{line}')


BLOCKS = list(_blocks())


def _loss_configs(value):
    """Every dict with a scoped ``type`` inside ``value`` (dicts, lists, tuples)."""
    if isinstance(value, dict):
        if str(value.get('type', '')).startswith('mmdet_losses.'):
            yield value
        for item in value.values():
            yield from _loss_configs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _loss_configs(item)


def _shown_values(code: str):
    """(expression source, numbers its comment shows) for each commented expression line."""
    for line in code.splitlines():
        match = SHOWN_TENSOR.search(line)
        if match and not line.lstrip().startswith('#'):
            numbers = [float(n) for n in re.findall(r'-?\d+\.?\d*(?:e-?\d+)?', match.group(1))]
            yield line[:match.start()].strip(), numbers


def test_the_docs_have_python_examples():
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize('code', BLOCKS)
def test_docs_python_block_runs(code):
    from mmdet_losses import MODELS
    namespace = {}
    exec(compile(code, '<docs>', 'exec'), namespace)
    for config in (c for value in namespace.values() for c in _loss_configs(value)):
        kwargs = dict(config)
        kwargs.pop('_delete_', None)
        assert isinstance(MODELS.build(kwargs), torch.nn.Module)
    for expression, numbers in _shown_values(code):
        ast.parse(expression, mode='eval')  # a statement, not an expression, is a docs bug
        value = eval(expression, namespace)
        torch.testing.assert_close(value.detach().flatten().double(),
                                   torch.tensor(numbers, dtype=torch.float64),
                                   rtol=0, atol=0.6 * 10 ** -4, msg=expression)
