"""Find the config mistakes that train silently: ``python -m mmdet_losses check CONFIG``.

The config is loaded as mmdet's tools load it (:meth:`mmengine.config.Config.fromfile`:
``_base_`` inheritance, ``mmdet::`` bases, ``custom_imports``), then every dict of it is
looked at. Each problem names the config key, what is wrong and the fix:

``error``
    * an IoU-family ``loss_bbox`` (ours or mmdet's) in a head that honours
      ``reg_decoded_bbox`` and has it False: the loss is fed encoded deltas, not boxes;
    * one of our box losses with ``box_format='xywh'`` or ``'cxcywh'`` inside ``model``:
      mmdet's heads always pass (x1, y1, x2, y2) boxes;
    * a sigmoid loss (``FocalLoss``, ``VarifocalLoss``, ``QualityFocalLoss``, ... : any loss
      whose ``use_sigmoid`` defaults to True) as ``loss_cls`` without ``use_sigmoid=True``, in
      a head that sizes its classifier from ``loss_cls.get('use_sigmoid', False)``: it gets
      C + 1 outputs;
    * a type that names nothing: ``mmdet_losses.CIOULoss`` (with the close matches), or an
      unscoped loss name that only this package registers (``type='WIoULoss'``).

``warning``
    the same checks where the head's class cannot be found (mmdet not importable, an unknown
    head), so that what it does with the flag is not known; and ``mmdet_losses.EIoULoss`` or
    ``mmdet_losses.SIoULoss`` with mmdet's arguments only (no ``gamma``, ``theta``,
    ``neg_gamma``, ``box_format``): the same name as mmdet's, another default loss
    (docs/dropin.md).

``info``
    an unscoped loss type registered both by mmdet and by this package (``type='CIoULoss'``):
    mmdet's class is built. It may be what you want; ``mmdet_losses.CIoULoss`` is ours.

``python -m mmdet_losses check CONFIG`` exits 1 when there is an error (``--strict``: an error
or a warning), else 0; ``tools/train.py`` runs the same check before training and prints it
(``--strict`` stops before training instead).
"""
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from .registry import SCOPE, close_matches

__all__ = ['Problem', 'check_config', 'check_file', 'format_problems', 'exit_status',
           'load_config', 'main']

LEVELS = ('error', 'warning', 'info')

#: mmdet's own losses on (x1, y1, x2, y2) boxes (mmdet.models.losses.iou_loss).
MMDET_BOX_LOSSES = frozenset(
    ['IoULoss', 'BoundedIoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss'])


@dataclass(frozen=True)
class Problem:
    """One finding: ``level`` ('error', 'warning', 'info'), the config key ``path``
    (``model.bbox_head.loss_bbox``), what is wrong and the fix."""
    level: str
    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f'{self.level}: {self.path}: {self.message}\n    fix: {self.fix}'


# --------------------------------------------------------------------------- type resolution

class _Resolver:
    """Finds the class a config ``type`` builds, as mmdet's registry would, without building
    it; ``None`` where it cannot be known."""

    def __init__(self, default_scope: Optional[str]):
        from .registry import MODELS as OURS
        self.ours = OURS
        self.ours.import_from_location()
        # mmdet's tools default to scope 'mmdet'; a scope whose package does not import leaves
        # unscoped names unknowable (None), rather than judged by another package's registry
        self.scope = default_scope or 'mmdet'
        self.registry = self._registry(self.scope)

    @staticmethod
    def _registry(scope: str):
        try:
            module = importlib.import_module(f'{scope}.registry')
            registry = getattr(module, 'MODELS')
            registry.import_from_location()
            return registry
        except Exception:  # noqa: BLE001 (a package that is not there, or does not import)
            return None

    def ours_get(self, name: str):
        return self.ours.module_dict.get(name)

    def other_get(self, name: str):
        """The class an unscoped (or other-scoped) name builds, looking in the default scope's
        registry and its parents; ``None`` if not found or not knowable."""
        if self.registry is None:
            return None
        try:
            found = self.registry.get(name)
        except Exception:  # noqa: BLE001 (mmengine raises RuntimeError/KeyError on misses)
            return None
        return found if inspect.isclass(found) else None

    def resolve(self, type_: Any):
        """``(cls or None, known)``: known is False where the registry to look in is missing."""
        if inspect.isclass(type_):
            return type_, True
        if not isinstance(type_, str):
            return None, False
        if type_.startswith(SCOPE + '.'):
            return self.ours_get(type_[len(SCOPE) + 1:]), True
        return self.other_get(type_), self.registry is not None

    def loss_names(self) -> List[str]:
        names = [f'{SCOPE}.{n}' for n in self.ours.module_dict]
        if self.registry is not None:
            names += [n for n in self._all_names(self.registry) if n.endswith('Loss')]
        return names

    @staticmethod
    def _all_names(registry) -> List[str]:
        names = []
        while registry is not None:
            names.extend(registry.module_dict)
            registry = registry.parent
        return names


def _is_ours(cls) -> bool:
    return inspect.isclass(cls) and cls.__module__.startswith(SCOPE + '.')


def _init_default(cls, name: str):
    """The default of ``__init__`` parameter ``name`` of the first class in ``cls``'s MRO
    that declares it; ``inspect.Parameter.empty`` if none does or it has no default."""
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        if name in params:
            return params[name].default
    return inspect.Parameter.empty


def _is_box_loss(cls) -> bool:
    """An IoU-family loss on boxes: ours (a ``box_format`` argument) or mmdet's."""
    if _is_ours(cls):
        return _init_default(cls, 'box_format') is not inspect.Parameter.empty
    return (inspect.isclass(cls) and cls.__module__.startswith('mmdet.')
            and cls.__name__ in MMDET_BOX_LOSSES)


def _sources(cls, names: Sequence[str] = ()) -> Iterator[Tuple[str, str]]:
    """``(method name, source)`` of the methods ``cls`` resolves (its own or inherited); only
    ``names`` where given."""
    for klass in inspect.getmro(cls):
        if klass is object:
            continue
        for name, member in vars(klass).items():
            if names and name not in names:
                continue
            if not inspect.isfunction(member) or getattr(cls, name, None) is not member:
                continue
            try:
                yield name, inspect.getsource(member)
            except (OSError, TypeError):
                continue


@functools.lru_cache(maxsize=None)
def _honours_reg_decoded_bbox(head_cls) -> Optional[bool]:
    """Whether the head's box loss call depends on ``reg_decoded_bbox`` (AnchorHead, BBoxHead
    and their kin): True where every method of it that calls ``self.loss_bbox`` reads the
    flag; False where one does not (GFL, FCOS, DDOD, ...: they decode the boxes themselves,
    DDOD in a method of its own beside AnchorHead's unused one); no call found: None."""
    calls = [src for _, src in _sources(head_cls) if 'self.loss_bbox(' in src]
    if not calls:
        return None
    return all('reg_decoded_bbox' in src for src in calls)


@functools.lru_cache(maxsize=None)
def _reads_use_sigmoid_from_config(head_cls) -> bool:
    """Whether an ``__init__`` in the head's MRO sizes the classifier from the ``loss_cls``
    config dict (``loss_cls.get('use_sigmoid', False)``: AnchorHead, AnchorFreeHead, ...)."""
    for klass in inspect.getmro(head_cls):
        init = vars(klass).get('__init__')
        if init is None:
            continue
        try:
            source = inspect.getsource(init)
        except (OSError, TypeError):
            continue
        if "get('use_sigmoid'" in source or 'get("use_sigmoid"' in source:
            return True
    return False


# --------------------------------------------------------------------------------- checking

def _walk(node: Any, path: str, key: str = '') -> Iterator[Tuple[str, str, Any]]:
    """``(path, key, dict)`` for every dict in the config tree, depth first."""
    if isinstance(node, dict):
        yield path, key, node
        for k, value in node.items():
            if not path and str(k).startswith('_'):
                continue  # a helper variable of the config file (`_heads = [...]`): not built
            yield from _walk(value, f'{path}.{k}' if path else str(k), str(k))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]', key)


def _type_name(type_: Any) -> str:
    if inspect.isclass(type_):
        return type_.__name__
    return str(type_)


def _check_type(path: str, key: str, node: dict, resolver: _Resolver,
                uses_ours: bool) -> List[Problem]:
    type_ = node.get('type')
    if not isinstance(type_, str):
        return []
    if type_.startswith(SCOPE + '.'):
        name = type_[len(SCOPE) + 1:]
        if not name.isidentifier() or resolver.ours.get(type_) is not None:
            return []
        return [Problem('error', f'{path}.type',
                        f'{type_} is not registered in {SCOPE}.MODELS (building fails with a '
                        'KeyError)', _fix_for_name(type_, resolver.loss_names()))]
    if not key.startswith('loss') or '.' in type_:
        return []
    ours = resolver.ours_get(type_)
    theirs = resolver.other_get(type_)
    scope = resolver.scope
    if ours is not None and theirs is not None and theirs is not ours and uses_ours:
        return [Problem(
            'info', f'{path}.type',
            f"type={type_!r} builds {theirs.__module__}.{theirs.__name__} ({scope}'s), not "
            f'{SCOPE}.{type_}: an unscoped name is looked up in the default scope {scope!r}',
            f"type='{SCOPE}.{type_}' if you meant this package's loss; nothing if you meant "
            f"{scope}'s")]
    if ours is not None and theirs is None and resolver.registry is not None:
        return [Problem(
            'error', f'{path}.type',
            f'type={type_!r} is not in the {scope!r} registry: only {SCOPE} registers it, and '
            'an unscoped name is not looked up there (building fails with a KeyError)',
            f"type='{SCOPE}.{type_}'")]
    if ours is None and theirs is None and resolver.registry is not None:
        return [Problem('error', f'{path}.type',
                        f'type={type_!r} is registered neither in {scope!r} nor in {SCOPE}',
                        _fix_for_name(type_, resolver.loss_names()))]
    return []


def _fix_for_name(name: str, candidates: Sequence[str]) -> str:
    short = name[len(SCOPE) + 1:] if name.startswith(SCOPE + '.') else name
    if name.startswith(SCOPE + '.'):
        pool = [c[len(SCOPE) + 1:] for c in candidates if c.startswith(SCOPE + '.')]
        matches = [f'{SCOPE}.{m}' for m in close_matches(short, pool)]
    else:
        pool = {c[len(SCOPE) + 1:] if c.startswith(SCOPE + '.') else c: c for c in candidates}
        matches = []
        for m in close_matches(short, list(pool)):
            matches.append(pool[m])
    if matches:
        return 'type=' + ' or '.join(repr(m) for m in matches)
    return f'a registered name (`python -m {SCOPE} list` shows ours)'


def _check_box_format(path: str, node: dict, resolver: _Resolver) -> List[Problem]:
    if not (path == 'model' or path.startswith(('model.', 'model['))):
        return []
    cls, _ = resolver.resolve(node.get('type'))
    fmt = node.get('box_format')
    if cls is None or not _is_ours(cls) or not _is_box_loss(cls) or fmt in (None, 'xyxy'):
        return []
    return [Problem(
        'error', f'{path}.box_format',
        f"{_type_name(node.get('type'))} with box_format={fmt!r}: mmdet's heads pass decoded "
        f'boxes as (x1, y1, x2, y2), which this loss would read as {fmt} (a perfect box '
        'does not give a zero loss)',
        f"remove {path}.box_format (the default is 'xyxy'); box_format is for calling the "
        'loss from your own code with other boxes')]


#: Our types that share mmdet's name but not its default loss: (the arguments whose presence
#: says which loss is meant: ours only, or the one that picks the sign; what ours is; the fix
#: for a converted mmdet config). See docs/dropin.md.
SAME_NAME_DEFAULTS = {
    'EIoULoss': (('gamma', 'box_format'),
                 "Efficient-IoU (Zhang et al.); mmdet's EIoULoss is Extended-IoU",
                 f"type='{SCOPE}.ExtendedIoULoss' for mmdet's Extended-IoU; gamma=0.0 to keep "
                 'Efficient-IoU and silence this'),
    'SIoULoss': (('neg_gamma', 'theta', 'box_format'),
                 "the paper's SIoU (mmdet's neg_gamma=True); mmdet's default is "
                 'neg_gamma=False', 'neg_gamma=False for what mmdet trains by default; '
                 "neg_gamma=True to keep the paper's loss and silence this"),
}


def _check_same_name(path: str, node: dict) -> List[Problem]:
    """A warning for ``mmdet_losses.EIoULoss``/``SIoULoss`` whose arguments do not say which
    loss is meant: a converted mmdet config would otherwise train another loss without a
    word."""
    type_ = node.get('type')
    name = type_[len(SCOPE) + 1:] if isinstance(type_, str) and \
        type_.startswith(SCOPE + '.') else None
    if name not in SAME_NAME_DEFAULTS or any(a in node for a in SAME_NAME_DEFAULTS[name][0]):
        return []
    _, ours, fix = SAME_NAME_DEFAULTS[name]
    return [Problem('warning', f'{path}.type', f'{type_} with mmdet\'s arguments only is {ours}',
                    fix)]


def _check_head(path: str, node: dict, resolver: _Resolver) -> List[Problem]:
    problems = []
    head_cls, head_known = resolver.resolve(node.get('type'))
    head_name = _type_name(node.get('type'))

    loss_bbox = node.get('loss_bbox')
    if isinstance(loss_bbox, dict):
        loss_cls, _ = resolver.resolve(loss_bbox.get('type'))
        if loss_cls is not None and _is_box_loss(loss_cls):
            honours = _honours_reg_decoded_bbox(head_cls) if head_cls is not None else None
            if 'reg_decoded_bbox' in node:
                decoded = bool(node['reg_decoded_bbox'])
            elif head_cls is not None:
                default = _init_default(head_cls, 'reg_decoded_bbox')
                decoded = bool(default) if default is not inspect.Parameter.empty else None
            else:
                decoded = None
            loss_name = _type_name(loss_bbox.get('type'))
            state = ('it is False' if 'reg_decoded_bbox' in node
                     else f"it is not set and {head_name}'s default is False")
            what = (f'{loss_name} compares boxes, but {head_name} feeds loss_bbox the encoded '
                    f'regression deltas unless reg_decoded_bbox=True, and {state} (the loss '
                    'trains, on the wrong quantity)')
            fix = f'set {path}.reg_decoded_bbox=True'
            if honours and decoded is False:
                problems.append(Problem('error', f'{path}.loss_bbox', what, fix))
            elif head_cls is None and not node.get('reg_decoded_bbox', False):
                known = 'is not registered' if head_known else 'cannot be looked up'
                problems.append(Problem(
                    'warning', f'{path}.loss_bbox',
                    f'{what}; {head_name} {known}, so whether it reads the flag is unknown',
                    fix + ' if the head honours it'))

    loss_cls_cfg = node.get('loss_cls')
    if isinstance(loss_cls_cfg, dict) and 'use_sigmoid' not in loss_cls_cfg:
        loss_cls, _ = resolver.resolve(loss_cls_cfg.get('type'))
        if loss_cls is not None and _init_default(loss_cls, 'use_sigmoid') is True:
            loss_name = _type_name(loss_cls_cfg.get('type'))
            what = (f'{loss_name} is a sigmoid loss, but {head_name} sizes its classifier '
                    "from loss_cls.get('use_sigmoid', False) and the config does not set it: "
                    'C + 1 (softmax) outputs instead of C')
            fix = f'add use_sigmoid=True to {path}.loss_cls'
            if head_cls is not None and _reads_use_sigmoid_from_config(head_cls):
                problems.append(Problem('error', f'{path}.loss_cls', what, fix))
            elif head_cls is None:
                problems.append(Problem(
                    'warning', f'{path}.loss_cls',
                    what.replace(f'but {head_name} sizes',
                                 f'but a dense head ({head_name} is not known) sizes'), fix))
    return problems


def _uses_ours(data: dict) -> bool:
    """Whether the config means to use this package: it imports it (``custom_imports``) or
    names one of its types. (An unscoped name in a plain mmdet config is mmdet's, no note.)"""
    imports = (data.get('custom_imports') or {}).get('imports') or []
    if isinstance(imports, str):
        imports = [imports]
    if any(str(name).split('.')[0] == SCOPE for name in imports):
        return True
    return any(isinstance(node.get('type'), str) and node['type'].startswith(SCOPE + '.')
               for _, _, node in _walk(data, ''))


def check_config(cfg) -> List[Problem]:
    """The problems of a loaded config (a :class:`mmengine.config.Config` or a dict), in the
    config's order."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    resolver = _Resolver(data.get('default_scope'))
    uses_ours = _uses_ours(data)
    problems: List[Problem] = []
    for path, key, node in _walk(data, ''):
        if 'type' in node:
            problems += _check_type(path, key, node, resolver, uses_ours)
            problems += _check_box_format(path, node, resolver)
            problems += _check_same_name(path, node)
            if any(k in node for k in ('loss_bbox', 'loss_cls')):
                problems += _check_head(path, node, resolver)
    return problems


def load_config(filename: str):
    """The config as mmdet's tools load it (``_base_``, ``mmdet::`` bases, custom imports)."""
    from mmengine.config import Config
    return Config.fromfile(filename)


def check_file(filename: str) -> List[Problem]:
    """Load the config file ``filename`` and check it."""
    return check_config(load_config(filename))


def exit_status(problems: Sequence[Problem], strict: bool = False) -> int:
    """1 if there is an error (``strict``: an error or a warning), else 0."""
    failing = ('error', 'warning') if strict else ('error',)
    return int(any(p.level in failing for p in problems))


def format_problems(problems: Sequence[Problem], source: str = 'config') -> str:
    """The report: one block a problem, then a count by level."""
    if not problems:
        return f'{source}: no problems found'
    counts = ', '.join(f'{sum(p.level == level for p in problems)} {level}(s)'
                       for level in LEVELS if any(p.level == level for p in problems))
    return '\n'.join([str(p) for p in problems] + [f'{source}: {counts}'])


def main(config: str, strict: bool = False) -> int:
    """The ``check`` command: print the report of ``config``; returns the exit status (2 if
    the config does not load)."""
    import sys
    try:
        cfg = load_config(config)
    except Exception as error:  # noqa: BLE001 (report any load failure with its type)
        print(f'error: {config} does not load: {type(error).__name__}: {error}',
              file=sys.stderr)
        return 2
    problems = check_config(cfg)
    print(format_problems(problems, config))
    return exit_status(problems, strict)

