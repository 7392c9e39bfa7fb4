"""The catalogue of registered losses, read from the code so that it cannot drift.

Everything here is derived from :data:`mmdet_losses.registry.MODELS` and the classes in it:
parameters and defaults from :func:`inspect.signature`, the functional form from the class's
``functional`` declaration (:class:`mmdet_losses.losses.BaseLoss`), the paper from the
``Reference:`` line of the class docstring (or of that functional form), the kind of input from
the class's ``inputs`` attribute, else a ``Shape:`` section or the ``pred`` argument of those
docstrings.
Whatever is not written down shows as ``-``.

Run it as ``python -m mmdet_losses list`` and ``python -m mmdet_losses show CIoULoss``.
"""
import argparse
import difflib
import importlib
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

__all__ = ['LossEntry', 'catalogue', 'describe', 'lookup', 'config_snippet', 'format_list',
           'format_show', 'format_info', 'main']

ABSENT = '-'
SCOPE = 'mmdet_losses'

# A docstring section header such as "Args:", "Example:", "Shape:" on a line of its own.
_SECTION = re.compile(r'^(?P<name>[A-Z][A-Za-z ]*):\s*(?P<rest>.*)$')


@dataclass(frozen=True)
class LossEntry:
    """One registered loss: its name, class and what its code and docstrings say about it."""
    name: str
    cls: type
    family: str
    parameters: Dict[str, object]  # name -> default, or inspect.Parameter.empty
    input_kind: str
    paper: str
    functional: Optional[Callable]

    @property
    def signature(self) -> str:
        """``Name(p=default, ...)`` as the class's ``__init__`` declares it."""
        params = ', '.join(name if default is inspect.Parameter.empty else f'{name}={default!r}'
                           for name, default in self.parameters.items())
        return f'{self.name}({params})'


def _registry():
    import mmdet_losses  # noqa: F401  (importing the package registers every loss)
    from mmdet_losses.registry import MODELS
    return MODELS


def _parameters(cls: type) -> Dict[str, object]:
    params = {}
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind is param.VAR_POSITIONAL:
            name = '*' + name
        elif param.kind is param.VAR_KEYWORD:
            name = '**' + name
        params[name] = param.default
    return params


def _sections(doc: str) -> Dict[str, List[str]]:
    """Split a cleaned (``inspect.getdoc``) docstring into ``{header: lines}``; the text on a
    header's own line (as in ``Reference: Ren et al.``) is the section's first line."""
    sections: Dict[str, List[str]] = {'': []}
    current = ''
    for line in doc.splitlines():
        match = _SECTION.match(line) if not line.startswith((' ', '\t')) else None
        if match and len(match.group('name').split()) <= 3:
            current = match.group('name').lower()
            sections[current] = [match.group('rest')] if match.group('rest') else []
        else:
            sections.setdefault(current, []).append(line)
    return sections


def _paragraph(lines: Sequence[str]) -> str:
    """The lines up to the first blank one, joined into one line."""
    text = []
    for line in lines:
        if not line.strip():
            if text:
                break
            continue
        text.append(line.strip())
    return ' '.join(text)


def _plain(text: str) -> str:
    """Drop reST markup that only gets in the way in a terminal."""
    text = re.sub(r':\w+:`~?([^`]+)`', r'\1', text)
    return text.replace('``', '')


def _reference(doc: str) -> Optional[str]:
    sections = _sections(doc)
    for header in ('reference', 'references', 'paper'):
        if header in sections:
            items, item = [], []
            for line in sections[header]:
                stripped = line.strip()
                if not stripped:
                    if item:
                        break
                    continue
                if stripped.startswith(('- ', '* ')) and item:
                    items.append(' '.join(item))
                    item = []
                item.append(stripped.lstrip('-* '))
            if item:
                items.append(' '.join(item))
            if items:
                return '; '.join(items)
    return None


def _argument(lines: Sequence[str], argument: str) -> Optional[str]:
    """The text of ``argument`` in an ``Args:``/``Shape:`` section (``pred: ...`` or
    ``pred (Tensor): ...``), with its indented continuation lines."""
    pattern = re.compile(rf'^(\s*){re.escape(argument)}\b[^:]*:\s*(.*)$')
    for i, line in enumerate(lines):
        match = pattern.match(line)
        if not match:
            continue
        indent, text = len(match.group(1)), [match.group(2).strip()]
        for following in lines[i + 1:]:
            if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                break
            text.append(following.strip())
        return ' '.join(t for t in text if t)
    return None


def _input_kind(docs: Sequence[str]) -> Optional[str]:
    for doc in docs:
        sections = _sections(doc)
        for header in ('shape', 'shapes', 'inputs', 'args', 'arguments'):
            found = _argument(sections.get(header, []), 'pred')
            if found:
                return found
    return None


def _functional_of(cls: type) -> Optional[Callable]:
    """The functional form the class declares (its ``functional`` attribute), else None."""
    functional = getattr(cls, 'functional', None)
    return functional if callable(functional) else None


def _family(cls: type) -> str:
    if isinstance(getattr(cls, 'family', None), str):  # a class may name its family
        return cls.family
    module = cls.__module__
    prefix = f'{SCOPE}.losses.'
    return module[len(prefix):] if module.startswith(prefix) else module


def describe(cls: type, name: Optional[str] = None) -> LossEntry:
    """What the code and docstrings of the loss class ``cls`` (registered as ``name``, by
    default its class name) say about it.

    Example:
        >>> describe(mmdet_losses.L1Loss).signature
        "L1Loss(reduction='mean', loss_weight=1.0)"
    """
    name = name or cls.__name__
    functional = _functional_of(cls)
    docs = [inspect.getdoc(cls) or '']
    if functional is not None:
        docs.append(inspect.getdoc(functional) or '')
    paper = next(filter(None, map(_reference, docs)), None)
    kind = getattr(cls, 'inputs', None) or _input_kind(docs)
    return LossEntry(name=name, cls=cls, family=_family(cls), parameters=_parameters(cls),
                     input_kind=_plain(kind) if kind else ABSENT,
                     paper=_plain(paper) if paper else ABSENT, functional=functional)


def catalogue() -> List[LossEntry]:
    """Every class registered in :data:`mmdet_losses.registry.MODELS`, in registration order.

    Example:
        >>> entry = next(e for e in catalogue() if e.name == 'SmoothL1Loss')
        >>> entry.family, entry.parameters['beta']
        ('regression', 1.0)
        >>> entry.paper
        'Girshick, "Fast R-CNN", ICCV 2015.'
    """
    return [describe(cls, name) for name, cls in _registry().module_dict.items()
            if inspect.isclass(cls)]


def lookup(name: str) -> LossEntry:
    """The entry of the loss called ``name`` (``'CIoULoss'``, ``'mmdet_losses.CIoULoss'`` or
    any capitalisation of it); a ``KeyError`` that suggests close names otherwise.

    Example:
        >>> lookup('mmdet_losses.l1loss').name
        'L1Loss'
    """
    entries = {entry.name: entry for entry in catalogue()}
    key = name[len(SCOPE) + 1:] if name.startswith(SCOPE + '.') else name
    if key in entries:
        return entries[key]
    folded = [n for n in entries if n.lower() == key.lower()]
    if len(folded) == 1:
        return entries[folded[0]]
    close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.5)
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    raise KeyError(f'no loss named {name!r} is registered in {SCOPE}.MODELS{hint} '
                   f'(`python -m {SCOPE} list` shows them all)')


def config_snippet(entry: LossEntry) -> str:
    """A config dict that builds the loss, every parameter at its default.

    ``use_sigmoid`` comes first where the class accepts it (mmdet's heads read it from the
    config to size their classifier): at its default, or ``True`` where it has none. A
    parameter without a default is written ``...`` and marked ``# required``.

    Example:
        >>> print(config_snippet(lookup('SmoothL1Loss')))
        dict(
            type='mmdet_losses.SmoothL1Loss',
            beta=1.0,
            reduction='mean',
            loss_weight=1.0)
    """
    items = [('type', repr(f'{SCOPE}.{entry.name}'), '')]
    params = {n: d for n, d in entry.parameters.items() if not n.startswith('*')}
    if 'use_sigmoid' in params:
        default = params.pop('use_sigmoid')
        items.append(('use_sigmoid', repr(True if default is inspect.Parameter.empty
                                          else default), ''))
    for name, default in params.items():
        if default is inspect.Parameter.empty:
            items.append((name, '...', '  # required'))
        else:
            items.append((name, repr(default), ''))
    lines = []
    for i, (name, value, comment) in enumerate(items):
        end = ')' if i == len(items) - 1 else ','
        lines.append(f'    {name}={value}{end}{comment}')
    return 'dict(\n' + '\n'.join(lines)


def _wrap(label: str, text: str, width: int) -> List[str]:
    lead = f'    {label:<7}'
    return textwrap.wrap(text, width=width, initial_indent=lead,
                         subsequent_indent=' ' * len(lead)) or [lead.rstrip()]


def format_list(entries: Sequence[LossEntry], width: int = 100) -> str:
    """The ``list`` command's text: the losses grouped by family, one block each.

    Example:
        >>> entry = lookup('SmoothL1Loss')
        >>> print(format_list([entry]))  # doctest: +ELLIPSIS
        regression (1)
          SmoothL1Loss(beta=1.0, reduction='mean', loss_weight=1.0)
            input: pred and target: tensors of one shape, any shape
            paper: Girshick, "Fast R-CNN", ICCV 2015.
    """
    families: Dict[str, List[LossEntry]] = {}
    for entry in entries:
        families.setdefault(entry.family, []).append(entry)
    out = []
    for family, members in families.items():
        if out:
            out.append('')
        out.append(f'{family} ({len(members)})')
        for entry in members:
            out.extend(textwrap.wrap(entry.signature, width=width, initial_indent='  ',
                                     subsequent_indent=' ' * (len(entry.name) + 3)))
            out.extend(_wrap('input:', entry.input_kind, width))
            out.extend(_wrap('paper:', entry.paper, width))
    return '\n'.join(out)


def format_show(entry: LossEntry, width: int = 100) -> str:
    """The ``show`` command's text: signature, input, paper, the class docstring, the
    functional form's docstring (where the formula usually is) and a config snippet."""
    out = [f'{SCOPE}.{entry.name}  ({entry.family})', '', entry.signature, '',
           *textwrap.wrap(f'input: {entry.input_kind}', width, subsequent_indent=' ' * 7),
           *textwrap.wrap(f'paper: {entry.paper}', width, subsequent_indent=' ' * 7), '',
           inspect.getdoc(entry.cls) or '(no docstring)']
    if entry.functional is not None:
        name = f'{SCOPE}.functional.{entry.functional.__name__}'
        params = inspect.signature(entry.functional)
        out += ['', f'Functional form: {name}{params}', '',
                textwrap.indent(inspect.getdoc(entry.functional) or '(no docstring)', '    ')]
    out += ['', 'Config:', '', config_snippet(entry)]
    return '\n'.join(out)


#: What each compiled kernel fuses (the rest always runs its pure-PyTorch path).
KERNEL_LOSSES = {
    'focal': 'FocalLoss with class-index targets',
    'iou': 'the 13 IoU-family losses and diou_nms',
    'regression': 'L1Loss, MSELoss, RMSELoss, SmoothL1Loss, BalancedL1Loss',
}


def format_info() -> str:
    """Versions, and each compiled kernel's state, dtypes, devices and losses."""
    import torch

    import mmdet_losses
    from mmdet_losses.ops._ext import KERNEL_DEVICES, KERNEL_DTYPES, kernel_status
    out = [f'mmdet_losses {mmdet_losses.__version__} (torch {torch.__version__})',
           f'compiled kernels ({", ".join(KERNEL_DTYPES)} on {", ".join(KERNEL_DEVICES)}; '
           'elsewhere the pure-PyTorch path):']
    for name, state in kernel_status().items():
        if state == 'loaded':  # which CPU build runs: 'avx2', or 'generic' (portable code,
            # what MMDET_LOSSES_GENERIC=1 forces)
            state += f' ({importlib.import_module(f"mmdet_losses.ops._{name}").cpu_build()})'
        out.append(f'  {name:<11} {state:<16} {KERNEL_LOSSES.get(name, "")}')
    from mmdet_losses.ops.gpu import status as gpu_status
    out.append(f'GPU kernels (Triton, the same operators on CUDA; they use the ids of the '
               f'compiled kernels above): {gpu_status()}')
    return '\n'.join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mmdet_losses {list,show NAME,info,check CONFIG}``; returns the exit
    status."""
    parser = argparse.ArgumentParser(
        prog=f'python -m {SCOPE}',
        description='The losses registered by mmdet_losses, read from the code.')
    commands = parser.add_subparsers(dest='command', required=True)
    listing = commands.add_parser('list', help='every registered loss, grouped by family')
    listing.add_argument('--family', help='only this family (e.g. regression, iou)')
    show = commands.add_parser('show', help="one loss's docstring and a config snippet")
    show.add_argument('name', help='a registered class name, e.g. CIoULoss')
    commands.add_parser('info', help='versions, and which compiled kernels are active')
    check = commands.add_parser(
        'check', help='find config mistakes that train silently (exit 1 on an error)')
    check.add_argument('config', help='an mmdet config file (_base_ and mmdet:: bases work)')
    check.add_argument('--strict', action='store_true', help='exit 1 on warnings too')
    args = parser.parse_args(argv)

    if args.command == 'check':
        from mmdet_losses.config_check import main as check_main
        return check_main(args.config, strict=args.strict)

    if args.command == 'info':
        print(format_info())
        return 0

    if args.command == 'list':
        entries = catalogue()
        if args.family:
            entries = [e for e in entries if e.family == args.family]
            if not entries:
                families = sorted({e.family for e in catalogue()})
                print(f'error: no family {args.family!r}; families: {", ".join(families)}',
                      file=sys.stderr)
                return 2
        print(format_list(entries))
        return 0
    try:
        entry = lookup(args.name)
    except KeyError as error:
        print(f'error: {error.args[0]}', file=sys.stderr)
        return 2
    print(format_show(entry))
    return 0
