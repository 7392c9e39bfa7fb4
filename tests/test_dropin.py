"""docs/dropin.md is the table the registries give (regenerated here), and the generator reads
the registries and signatures (mmdet_losses/dropin.py)."""
import inspect

import pytest

import mmdet_losses
from mmdet_losses import dropin

mmdet = pytest.importorskip('mmdet')


@pytest.fixture(scope='module')
def mmdet_classes():
    return dropin.mmdet_loss_classes()


def test_docs_dropin_is_up_to_date():
    """Fails when a loss was added, renamed or changed its arguments without regenerating the
    table: run ``python -m mmdet_losses dropin --write``."""
    expected = dropin.dropin_markdown()
    assert dropin.DEFAULT_PATH.read_text() == expected, \
        'docs/dropin.md is stale: run python -m mmdet_losses dropin --write'


def test_every_mmdet_loss_class_has_a_row(mmdet_classes):
    from mmdet.models import losses as mmdet_losses_module
    exported = {name for name, obj in vars(mmdet_losses_module).items()
                if inspect.isclass(obj) and name in mmdet_classes}
    rows = dropin.dropin_rows(mmdet_classes)
    assert [r.mmdet_type for r in rows] == sorted(mmdet_classes)
    assert len(rows) >= 30 and exported <= {r.mmdet_type for r in rows}
    registry = mmdet_losses.MODELS.module_dict
    for row in rows:
        assert (row.status == 'missing') == (row.mmdet_type not in registry)
        if row.ours is not None:
            assert row.ours is registry[row.mmdet_type]


def test_the_known_differences_are_listed(mmdet_classes):
    rows = {r.mmdet_type: r for r in dropin.dropin_rows(mmdet_classes)}
    for name, word in (('EIoULoss', 'ExtendedIoULoss'), ('SIoULoss', 'neg_gamma'),
                       ('TripletLoss', 'no other sample'), ('QualityFocalLoss', 'isinstance')):
        assert rows[name].status == 'documented difference'
        assert word in rows[name].difference
    # read from the signatures: mmdet's default neg_gamma=False against ours
    assert 'Default `neg_gamma=True` (mmdet: `neg_gamma=False`)' in rows['SIoULoss'].difference
    for name in ('L1Loss', 'GIoULoss', 'FocalLoss'):
        assert rows[name].status == 'identical' and rows[name].difference == ''


def test_signature_differences_are_found():
    class Theirs:
        def __init__(self, alpha=0.25, gamma=2.0, extra=None):
            pass

    class Ours:
        def __init__(self, alpha=0.25, gamma=1.5):
            pass

    class Permissive:
        def __init__(self, alpha=0.25, gamma=2.0, **kwargs):
            pass

    notes = dropin._argument_differences('X', Theirs, Ours)
    assert notes == ['Default `gamma=1.5` (mmdet: `gamma=2.0`).',
                     'No argument `extra` (mmdet: `extra=None`).']
    assert dropin._argument_differences('X', Theirs, Permissive) == []


def test_missing_class_and_dropin_note(monkeypatch):
    class Theirs:
        def __init__(self, beta=1.0):
            pass

    class Ours:
        dropin_note = 'Declared by the class.'

        def __init__(self, beta=1.0):
            pass

    monkeypatch.setitem(mmdet_losses.MODELS.module_dict, 'ZzOursLoss', Ours)
    rows = dropin.dropin_rows({'ZzOursLoss': Theirs, 'ZzNowhereLoss': Theirs})
    assert rows[0] == dropin.DropinRow('ZzNowhereLoss', None, 'missing', '')
    assert rows[1] == dropin.DropinRow('ZzOursLoss', Ours, 'documented difference',
                                       'Declared by the class.')
    text = dropin.dropin_markdown(rows)
    assert '| `ZzNowhereLoss` | - | missing | - |' in text
    assert '2 mmdet loss types: 0 identical, 1 with a documented difference, 1 missing.' in text


def test_other_libraries_are_checked_against_the_signatures(monkeypatch):
    text = dropin.dropin_markdown([])
    assert '| mmyolo | `IoULoss` | `YOLOIoULoss` |' in text
    assert '| mmpretrain | `CrossEntropyLoss` | `CrossEntropyLoss` |' in text
    monkeypatch.setattr(dropin, 'OTHER_LIBRARIES', (
        ('lib', 'T', ('use_soft', 'nosuch'), 'CrossEntropyLoss', 'fine'),
        ('lib', 'U', (), 'NoSuchLoss', '-')))
    text = dropin.dropin_markdown([])
    assert '| lib | `T` | `CrossEntropyLoss` | `use_soft`, `nosuch` | lacks nosuch |' in text
    assert '| lib | `U` | missing |' in text


def test_main_write_check_and_stale(tmp_path, capsys):
    path = tmp_path / 'dropin.md'
    assert dropin.main(['--check', '--path', str(path)]) == 1  # absent
    assert dropin.main(['--write', '--path', str(path)]) == 0
    assert dropin.main(['--check', '--path', str(path)]) == 0
    path.write_text(path.read_text().replace('identical', 'same', 1))
    assert dropin.main(['--check', '--path', str(path)]) == 1
    assert 'stale' in capsys.readouterr().err
    assert dropin.main([]) == 0
    assert capsys.readouterr().out.startswith('# Drop-in table')
