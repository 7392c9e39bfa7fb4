"""The drop-in table: every loss class mmdet registers, and what ``mmdet_losses.<Name>`` is.

``docs/dropin.md`` is generated from the two registries, never written by hand: the loss
classes of ``mmdet.registry.MODELS`` (after ``register_all_modules``, the classes defined
under ``mmdet.models.losses``), each looked up by name in :data:`mmdet_losses.MODELS`. A row
is

- **missing**: no class of that name here;
- **identical**: same arguments and defaults (read from both ``__init__`` signatures), and
  no behaviour recorded as different;
- **documented difference**: what :data:`DIFFERENCES` (or the class's own ``dropin_note``
  attribute) records, plus every mmdet argument that ours lacks or whose default differs,
  found by comparing the signatures, unless :data:`EQUIVALENT_DEFAULTS` explains why the two
  defaults mean the same.

A second table lists the interfaces of mmyolo and mmpretrain (:data:`OTHER_LIBRARIES`) and
whether their class is registered here. Run ``python -m mmdet_losses dropin --write`` to
regenerate the file, ``--check`` to fail (exit 1) where it is stale; tests/test_dropin.py
does the latter.
"""
import argparse
import inspect
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

__all__ = ['DropinRow', 'mmdet_loss_classes', 'dropin_rows', 'dropin_markdown', 'main']

#: The file the table is written to, relative to the repository root.
DEFAULT_PATH = Path(__file__).resolve().parent.parent / 'docs' / 'dropin.md'

#: mmdet type -> how ours differs in behaviour (beyond what the signatures show).
DIFFERENCES: Dict[str, str] = {
    'EIoULoss': (
        "mmdet's `EIoULoss` is Extended-IoU (Peng and Yu 2021, `smooth_point`); ours is "
        "Efficient-IoU (Zhang et al. 2021, `gamma` for Focal-EIoU). mmdet's loss is "
        "`mmdet_losses.ExtendedIoULoss` (same arguments, values and gradients). "
        "`mmdet_losses.EIoULoss(smooth_point=...)` is a TypeError that names "
        "`ExtendedIoULoss`; a config of mmdet's `EIoULoss` that leaves `smooth_point` at its "
        "default cannot be told apart by its arguments: `python -m mmdet_losses check CONFIG` "
        "(which `tools/train.py` runs before training) warns on `mmdet_losses.EIoULoss` "
        "without `gamma` or `box_format`, naming `ExtendedIoULoss`."),
    'SIoULoss': (
        "Ours defaults to the paper's distance cost, mmdet's `neg_gamma=True`; mmdet's own "
        "default is `neg_gamma=False`. `neg_gamma=False` here gives mmdet's formula and values "
        "(its distance cost is <= 0, so it lowers the loss as the centres move apart, and the "
        "loss is 0 with no gradient for boxes far apart, where mmdet's clamp to [-1, 1] binds); "
        "pass `neg_gamma=False` explicitly to train exactly what mmdet's default trains "
        "(`python -m mmdet_losses check CONFIG` warns on `mmdet_losses.SIoULoss` without "
        "`neg_gamma`, `theta` or `box_format`)."),
    'TripletLoss': (
        "An anchor whose class has no other sample in the batch is left out of the mean; "
        "mmdet takes its own distance (0) as its positive one and keeps it."),
    'QualityFocalLoss': (
        "mmdet's DETR-family heads (`DETRHead`, `DINOHead`, `GroundingDINOHead`) pass "
        "(labels, IoU scores) only to an instance of mmdet's own class (an `isinstance` "
        "check) and plain labels to any other. Ours refuses plain labels with a ValueError "
        "that says so, rather than train with made-up scores: keep mmdet's "
        "`QualityFocalLoss` in those heads. Dense heads (GFL, TOOD, ...) are unaffected."),
}

#: (mmdet type, argument) -> why a default that differs in the signature means the same.
EQUIVALENT_DEFAULTS: Dict[tuple, str] = {
    ('CrossEntropyLoss', 'ignore_index'): 'None means -100 in both',
    ('TripletLoss', 'hard_mining'): "None keeps mining='batch_hard', mmdet's hard_mining=True",
    ('EIoULoss', 'smooth_point'): 'see the difference: refused, names ExtendedIoULoss',
}

#: (library, its type, the arguments our class must take, our registered class, note).
OTHER_LIBRARIES = (
    ('mmyolo', 'IoULoss', ('iou_mode', 'bbox_format', 'eps', 'return_iou'), 'YOLOIoULoss',
     "bbox_format 'xywh' is centre x, centre y, w, h; weights all <= 0 give the weighted 0 "
     "in the same (loss, iou) form instead of mmyolo's bare 0"),
    ('mmpretrain', 'LabelSmoothLoss', ('label_smooth_val', 'num_classes', 'use_sigmoid', 'mode',
                                       'class_weight', 'pos_weight'), 'LabelSmoothLoss',
     'num_classes=None reads C from each call; pos_weight without use_sigmoid is a ValueError '
     '(mmpretrain ignores it)'),
    ('mmpretrain', 'AsymmetricLoss', ('gamma_pos', 'gamma_neg', 'clip', 'use_sigmoid', 'eps'),
     'AsymmetricLoss', '-'),
    ('mmpretrain', 'CrossEntropyLoss', ('use_soft', 'use_sigmoid', 'class_weight'),
     'CrossEntropyLoss',
     "use_soft=True: identical. With use_sigmoid=True ours is mmdet's: class_weight weights "
     "the positive term (mmpretrain: each class's whole loss), and there is no pos_weight; "
     'for mmpretrain\'s multi-label BCE use BinaryCrossEntropyLoss(class_weight, pos_weight)'),
)


class DropinRow(NamedTuple):
    """One mmdet loss type: our class of that name (None: missing), the status and what
    differs."""
    mmdet_type: str
    ours: Optional[type]
    status: str
    difference: str


def mmdet_loss_classes() -> Dict[str, type]:
    """name -> class of every loss mmdet registers (classes under ``mmdet.models.losses``,
    after ``register_all_modules``). Needs mmdet (ImportError otherwise)."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return {name: cls for name, cls in sorted(MMDET_MODELS.module_dict.items())
            if getattr(cls, '__module__', '').startswith('mmdet.models.losses')}


def _parameters(cls: type) -> Dict[str, object]:
    params = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == 'self' or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        params[name] = param.default
    return params


def _same(a, b) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 (a default whose == is not a bool)
        return False


def _argument_differences(name: str, theirs: type, ours: type) -> List[str]:
    """The mmdet arguments ours lacks or defaults differently, by the signatures, except
    those :data:`EQUIVALENT_DEFAULTS` explains."""
    mine = _parameters(ours)
    takes_any = any(p.kind is p.VAR_KEYWORD
                    for p in inspect.signature(ours.__init__).parameters.values())
    out = []
    for arg, default in _parameters(theirs).items():
        if (name, arg) in EQUIVALENT_DEFAULTS:
            continue
        if arg not in mine:
            if not takes_any:
                out.append(f'No argument `{arg}` (mmdet: `{arg}={default!r}`).')
        elif not _same(default, mine[arg]):
            out.append(f'Default `{arg}={mine[arg]!r}` (mmdet: `{arg}={default!r}`).')
    return out


def dropin_rows(mmdet_classes: Optional[Dict[str, type]] = None) -> List[DropinRow]:
    """One row per mmdet loss type, in name order."""
    import mmdet_losses
    registry = mmdet_losses.MODELS.module_dict
    mmdet_classes = mmdet_loss_classes() if mmdet_classes is None else mmdet_classes
    rows = []
    for name, theirs in sorted(mmdet_classes.items()):
        ours = registry.get(name)
        if ours is None:
            rows.append(DropinRow(name, None, 'missing', ''))
            continue
        notes = [text for text in (getattr(ours, 'dropin_note', None), DIFFERENCES.get(name))
                 if text]
        notes += _argument_differences(name, theirs, ours)
        status = 'documented difference' if notes else 'identical'
        rows.append(DropinRow(name, ours, status, ' '.join(notes)))
    return rows


def _cell(text: str) -> str:
    return text.replace('|', '&#124;').replace('\n', ' ')


def dropin_markdown(rows: Optional[Sequence[DropinRow]] = None) -> str:
    """The text of docs/dropin.md."""
    import mmdet

    import mmdet_losses
    rows = dropin_rows() if rows is None else rows
    counts = {status: sum(r.status == status for r in rows)
              for status in ('identical', 'documented difference', 'missing')}
    out = [
        '# Drop-in table',
        '',
        '<!-- Generated by `python -m mmdet_losses dropin --write` from the registries '
        '(mmdet_losses/dropin.py); do not edit by hand. tests/test_dropin.py fails when it is '
        'stale. -->',
        '',
        f'Every loss class that mmdet {mmdet.__version__} registers, and the class that a '
        'config gets when it prefixes the type with `mmdet_losses.` '
        '(`dict(type=\'mmdet_losses.FocalLoss\', ...)`). **identical**: same arguments and '
        'defaults (compared from the signatures) and the same values; **documented '
        'difference**: what differs, and what to write instead; **missing**: no class of '
        'that name yet (keep mmdet\'s).',
        '',
        f'{len(rows)} mmdet loss types: {counts["identical"]} identical, '
        f'{counts["documented difference"]} with a documented difference, '
        f'{counts["missing"]} missing.',
        '',
        '| mmdet type | mmdet_losses class | status | difference |',
        '| --- | --- | --- | --- |',
    ]
    for row in rows:
        ours = f'`{row.ours.__name__}`' if row.ours is not None else '-'
        out.append(f'| `{row.mmdet_type}` | {ours} | {row.status} | '
                   f'{_cell(row.difference) or "-"} |')
    registry = mmdet_losses.MODELS.module_dict
    out += [
        '',
        '## Other OpenMMLab libraries',
        '',
        'Their types clash with mmdet\'s names or have no mmdet counterpart; the class here '
        'takes their arguments (tested against their documented formulas; mmyolo and '
        'mmpretrain are not installed beside mmcv 2.1.0).',
        '',
        '| library | their type | mmdet_losses class | arguments | difference |',
        '| --- | --- | --- | --- | --- |',
    ]
    for library, theirs, arguments, ours, note in OTHER_LIBRARIES:
        cls = registry.get(ours)
        lacking = [] if cls is None else [a for a in arguments if a not in _parameters(cls)]
        name = 'missing' if cls is None else f'`{ours}`'
        if lacking:  # read from the signature: a class that lost an argument shows it
            note = f'lacks {", ".join(lacking)}'
        args = ', '.join(f'`{a}`' for a in arguments)
        out.append(f'| {library} | `{theirs}` | {name} | {args} | {_cell(note)} |')
    return '\n'.join(out) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mmdet_losses dropin [--write | --check] [--path PATH]``: print the table,
    write it, or exit 1 where the file differs from the registries."""
    parser = argparse.ArgumentParser(prog='python -m mmdet_losses dropin',
                                     description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument('--write', action='store_true', help='write the table to --path')
    action.add_argument('--check', action='store_true',
                        help='exit 1 unless --path holds the table the registries give')
    parser.add_argument('--path', type=Path, default=DEFAULT_PATH,
                        help=f'default: {DEFAULT_PATH}')
    args = parser.parse_args(argv)
    text = dropin_markdown()
    if args.write:
        args.path.write_text(text)
        print(f'wrote {args.path}')
        return 0
    if args.check:
        current = args.path.read_text() if args.path.exists() else None
        if current != text:
            print(f'{args.path} is stale: run python -m mmdet_losses dropin --write',
                  file=sys.stderr)
            return 1
        print(f'{args.path} is up to date')
        return 0
    sys.stdout.write(text)
    return 0
