"""The catalogue (`python -m mmdet_losses list/show`) against the registry it is read from."""
import inspect
import re
import runpy
import sys

import pytest

import mmdet_losses
import mmdet_losses.__main__  # noqa: F401  (does nothing on import, see the last test)
from mmdet_losses import catalogue as cat
from mmdet_losses.registry import MODELS

REGISTERED = sorted(MODELS.module_dict)
LISTED_NAME = re.compile(r'^  (\w+)\(')


def listed_names(text: str):
    return [m.group(1) for m in map(LISTED_NAME.match, text.splitlines()) if m]


def snippet_of(show_text: str) -> str:
    return show_text.split('\nConfig:\n\n', 1)[1]


def test_list_names_exactly_the_registered_classes(capsys):
    assert cat.main(['list']) == 0
    names = listed_names(capsys.readouterr().out)
    assert sorted(names) == REGISTERED
    assert len(names) == len(set(names))


def test_list_as_python_dash_m(monkeypatch, capsys):
    """What ``python -m mmdet_losses list`` runs, in this process (a subprocess would cost
    seconds of imports)."""
    monkeypatch.setattr(sys, 'argv', ['mmdet_losses', 'list'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(mmdet_losses.__main__.__file__, run_name='__main__')
    assert exit_info.value.code == 0
    assert sorted(listed_names(capsys.readouterr().out)) == REGISTERED


def test_list_shows_parameters_defaults_input_and_paper(capsys):
    cat.main(['list', '--family', 'regression'])
    out = capsys.readouterr().out
    assert out.startswith('regression (5)\n')
    block = out.split('  BalancedL1Loss(', 1)[1]
    assert block.startswith("alpha=0.5, gamma=1.5, beta=1.0, reduction='mean', "
                            'loss_weight=1.0)\n')
    # the paper comes from the functional form's docstring; the input from the class
    assert '    paper: Pang et al., "Libra R-CNN: Towards Balanced Learning for Object ' \
           'Detection", CVPR 2019.' in block
    assert 'input: pred and target: tensors of one shape, any shape paper:' \
        in ' '.join(block.split())
    lines = out.splitlines()
    l1 = lines.index("  L1Loss(reduction='mean', loss_weight=1.0)")
    paper = next(line for line in lines[l1 + 1:] if line.startswith('    paper:'))
    assert paper == '    paper: -'  # no Reference: line anywhere


def test_list_unknown_family_is_an_error(capsys):
    assert cat.main(['list', '--family', 'nosuch']) == 2
    err = capsys.readouterr().err
    assert "no family 'nosuch'" in err and 'regression' in err


def test_entries_read_signature_defaults():
    entries = {e.name: e for e in cat.catalogue()}
    assert entries['SmoothL1Loss'].parameters == dict(beta=1.0, reduction='mean',
                                                      loss_weight=1.0)
    for name, entry in entries.items():
        signature = inspect.signature(MODELS.get(name))
        assert list(entry.parameters) == [
            ('**' if p.kind is p.VAR_KEYWORD else '*' if p.kind is p.VAR_POSITIONAL else '')
            + p.name for p in signature.parameters.values()]


@pytest.mark.parametrize('name', REGISTERED)
def test_show_prints_docstring_and_a_snippet_that_builds(name, capsys):
    assert cat.main(['show', name]) == 0
    out = capsys.readouterr().out
    cls = MODELS.get(name)
    assert out.startswith(f'mmdet_losses.{name}  ')
    assert inspect.getdoc(cls) in out
    snippet = snippet_of(out)
    config = eval(snippet, {})  # a plain dict literal
    assert config['type'] == f'mmdet_losses.{name}'
    required = [n for n, p in inspect.signature(cls).parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        for param in required:
            assert re.search(rf'^    {param}=\.\.\.[,)]  # required$', snippet, re.M), snippet
        return
    if 'use_sigmoid' in inspect.signature(cls).parameters:
        assert snippet.splitlines()[2].startswith('    use_sigmoid=')
    loss = MODELS.build(config)
    assert type(loss) is cls
    for param, value in config.items():
        if param != 'type' and hasattr(loss, param):
            assert getattr(loss, param) == value, param


def test_snippet_text_is_exact():
    entry = cat.lookup('SmoothL1Loss')
    assert cat.config_snippet(entry) == ("dict(\n    type='mmdet_losses.SmoothL1Loss',\n"
                                         "    beta=1.0,\n    reduction='mean',\n"
                                         '    loss_weight=1.0)')


def test_snippets_build_through_mmdet_registry():
    pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv')
    from mmdet.registry import MODELS as MMDET_MODELS
    built = 0
    for entry in cat.catalogue():
        snippet = cat.config_snippet(entry)
        if '# required' not in snippet:
            assert type(MMDET_MODELS.build(eval(snippet, {}))) is entry.cls, entry.name
            built += 1
    needs_arguments = [name for name in REGISTERED if any(
        p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in inspect.signature(MODELS.get(name)).parameters.values())]
    assert built == len(REGISTERED) - len(needs_arguments)
    config = eval(cat.config_snippet(cat.lookup('SmoothL1Loss')), {})
    config['beta'] = 0.25
    loss = MMDET_MODELS.build(config)
    assert type(loss) is mmdet_losses.SmoothL1Loss and loss.beta == 0.25


def test_show_unknown_name_is_a_clear_error(capsys):
    assert cat.main(['show', 'SmothL1Loss']) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert "no loss named 'SmothL1Loss'" in captured.err
    assert 'did you mean SmoothL1Loss' in captured.err


def test_show_unknown_name_exits_non_zero(monkeypatch, capsys):
    """``python -m mmdet_losses show NoSuchLoss``, run in this process."""
    monkeypatch.setattr(sys, 'argv', ['mmdet_losses', 'show', 'NoSuchLoss'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(mmdet_losses.__main__.__file__, run_name='__main__')
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "no loss named 'NoSuchLoss'" in captured.err and captured.out == ''


def test_lookup_accepts_scope_and_case():
    assert cat.lookup('mmdet_losses.SmoothL1Loss').cls is mmdet_losses.SmoothL1Loss
    assert cat.lookup('smoothl1loss').cls is mmdet_losses.SmoothL1Loss
    with pytest.raises(KeyError, match="no loss named 'smooth'"):
        cat.lookup('smooth')


class _Documented:
    """A made-up loss.

    Args:
        margin: a margin.

    Shape:
        pred (Tensor): embeddings (N, D), one row
            per sample.
        target: labels (N,).

    References:
        - Author A, "First", 2001.
        - Author B,
          "Second", 2002.

    Example:
        >>> 1
        1
    """

    def __init__(self, num_classes, margin=0.5, use_sigmoid=False, *args, reduction='mean',
                 **kwargs):
        pass


class _Bare:
    def __init__(self, use_sigmoid=True, loss_weight=1.0):
        pass


def test_docstring_parsing_of_shape_and_references():
    entry = cat.describe(_Documented, 'Documented')
    assert entry.input_kind == 'embeddings (N, D), one row per sample.'
    assert entry.paper == 'Author A, "First", 2001.; Author B, "Second", 2002.'
    assert entry.signature == ("Documented(num_classes, margin=0.5, use_sigmoid=False, *args, "
                               "reduction='mean', **kwargs)")
    assert cat.config_snippet(entry) == (
        "dict(\n    type='mmdet_losses.Documented',\n    use_sigmoid=False,\n"
        "    num_classes=...,  # required\n    margin=0.5,\n    reduction='mean')")


def test_absent_docstring_shows_dash():
    entry = cat.describe(_Bare)
    assert (entry.input_kind, entry.paper, entry.functional) == ('-', '-', None)
    assert cat.config_snippet(entry) == (
        "dict(\n    type='mmdet_losses._Bare',\n    use_sigmoid=True,\n    loss_weight=1.0)")


def test_reference_on_the_header_line_continues_to_the_blank_line():
    doc = 'Loss.\n\nReference: Ren et al.,\n    "Faster R-CNN", 2015.\n\nExample:\n    >>> 1\n'
    assert cat._reference(doc) == 'Ren et al., "Faster R-CNN", 2015.'


def test_importing_main_does_nothing(capsys):
    import importlib

    import mmdet_losses.__main__ as entry
    importlib.reload(entry)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ('', '')


def test_every_loss_states_its_input_not_a_module_summary():
    """The input line describes pred (and target), never the first sentence of a module
    docstring (which once showed "Margin-based losses of a score f..." for ZeroOneLoss)."""
    for entry in cat.catalogue():
        assert entry.input_kind != cat.ABSENT, entry.name
        modules = [entry.cls.__module__]
        if entry.functional is not None:
            modules.append(entry.functional.__module__)
        for module in modules:
            summary = (sys.modules[module].__doc__ or '').split()[:6]
            assert entry.input_kind.split()[:6] != summary, f'{entry.name}: {entry.input_kind}'
