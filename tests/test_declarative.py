"""Loss classes are declarative (issue #13): each names its functional form and the parameters
it stores once (``functional``, ``params``), and BaseLoss's generic ``compute``,
``extra_repr`` and the catalogue read that declaration. A class that hand-writes more of its
call must be listed in :data:`SPECIAL` with the reason."""
import inspect

import pytest
import torch

import mmdet_losses
from mmdet_losses import MODELS, functional
from mmdet_losses.catalogue import describe
from mmdet_losses.losses import BaseLoss

#: The arguments a class needs beyond its defaults (required ones) to be built here.
REQUIRED = {
    'MPDIoULoss': dict(img_size=(640, 480)),
    'LabelSmoothLoss': dict(label_smooth_val=0.1),
    'CenterLoss': dict(num_classes=3, feat_dim=2),
    'CrossEntropyCustomLoss': dict(num_classes=3),
    'FocalCustomLoss': dict(num_classes=3),
}

#: Where a class replaces BaseLoss's generic call, as ``'DefiningClass.method'``, and why.
SPECIAL = {
    # a call's keywords override the stored parameters (box_format=, img_size= per call),
    # and eps=None means the functional form's default
    '_BoxLoss.compute': 'box losses merge call keywords over the stored parameters',
    '_BoxLoss.functional_kwargs': 'box losses: eps=None is not passed on',
    # stateful: the functional form also takes the module's state
    'WIoULoss.functional_kwargs': 'passes its running mean and the training mode',
    '_GHM.functional_kwargs': 'passes its moving-average counts and the training mode',
    'SeesawLoss.functional_kwargs': 'passes its class counts',
    'EQLV2Loss.functional_kwargs': 'passes its pos_neg statistics',
    'CenterLoss.functional_kwargs': 'passes its centres (a parameter)',
    'EQLV2Loss.compute': 'checks the channel count, then collects its statistics after the '
                        'loss (training mode)',
    'SeesawLoss.forward': 'updates the class counts and returns the two terms (a dict)',
    # interfaces
    'YOLOIoULoss.forward': "mmyolo's interface: returns (loss, iou) with return_iou",
    'YOLOIoULoss.compute': 'the loss of the (loss, iou) pair',
    'AssociativeEmbeddingLoss.forward': "mmdet's (tl_emb, br_emb, match) form besides the "
                                        'per-object one',
    'DiceLoss.forward': "mmdet's argument order (weight, reduction_override, avg_factor)",
    'GaussianFocalLoss.forward': "mmdet's pos_inds/pos_labels keywords, refused positionally",
    'KnowledgeDistillationKLDivLoss.forward': "mmdet's argument name soft_label",
    'CrossEntropyLoss.compute': "use_soft's target check; a call's ignore_index overrides the "
                                'stored one',
    '_BatchLoss.compute': 'the functional form of the batch gathered over the DDP ranks',
    '_CustomClassifier.extra_repr': 'num_classes (no parameter of the functional form) first',
    # kept as before: call keywords other than the declared ones are ignored
}
METHODS = ('forward', 'compute', 'functional_kwargs', 'extra_repr')
# the positional arguments every functional form starts with
CALL_ARGS = ('pred', 'target', 'weight', 'reduction', 'avg_factor')

CLASSES = sorted(((name, cls) for name, cls in MODELS.module_dict.items()
                  if inspect.isclass(cls)), key=lambda item: item[0])
IDS = [name for name, _ in CLASSES]


def _build(name, cls):
    torch.manual_seed(0)
    return cls(**REQUIRED.get(name, {}))


@pytest.mark.parametrize('name,cls', CLASSES, ids=IDS)
def test_declares_an_exported_functional_form(name, cls):
    fn = cls.functional
    assert inspect.isfunction(fn), f'{name}.functional must be a function, got {fn!r}'
    assert fn.__name__ in functional.__all__ and getattr(functional, fn.__name__) is fn, \
        f'{name}.functional ({fn.__name__}) is not exported by mmdet_losses.functional'
    assert tuple(inspect.signature(fn).parameters)[:5] == CALL_ARGS, fn.__name__
    # read from an instance it is not bound to it (a staticmethod)
    assert _build(name, cls).functional is fn


@pytest.mark.parametrize('name,cls', CLASSES, ids=IDS)
def test_each_param_is_an_init_argument_an_attribute_and_a_functional_keyword(name, cls):
    init = inspect.signature(cls).parameters
    fn = inspect.signature(cls.functional).parameters
    loss = _build(name, cls)
    assert len(set(cls.params)) == len(cls.params), f'{name}.params repeats a name'
    for param in cls.params:
        assert param in init, f'{name}.params: {param} is no __init__ argument'
        assert param in fn and param not in CALL_ARGS and fn[param].kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY), \
            f'{name}.params: {param} is no keyword of {cls.functional.__name__}'
        assert hasattr(loss, param), f'{name}: no attribute {param}'
        default = init[param].default
        if default is not inspect.Parameter.empty and default is not None \
                and name not in REQUIRED:
            assert getattr(loss, param) == default, (name, param)
    # what a call passes binds to the functional form (state included)
    inspect.signature(cls.functional).bind(None, None, None, 'mean', None,
                                           **loss.functional_kwargs())


@pytest.mark.parametrize('name,cls', CLASSES, ids=IDS)
def test_a_hand_written_call_is_listed_with_its_reason(name, cls):
    for method in METHODS:
        owner = next(c for c in cls.__mro__ if method in vars(c))
        if owner is not BaseLoss:
            assert f'{owner.__name__}.{method}' in SPECIAL, \
                f'{name} replaces BaseLoss.{method} in {owner.__name__}: declare functional ' \
                f'and params instead, or list it in SPECIAL with the reason'


def test_every_special_entry_is_in_use():
    used = {f'{c.__name__}.{m}' for _, cls in CLASSES for c in cls.__mro__
            for m in METHODS if m in vars(c) and c is not BaseLoss}
    assert set(SPECIAL) <= used, sorted(set(SPECIAL) - used)


def test_the_catalogue_reads_the_declaration():
    for _, cls in CLASSES:
        assert describe(cls).functional is cls.functional

    class Renamed(BaseLoss):  # a name that is no functional form's snake case
        """A loss declared, not registered."""
        functional = mmdet_losses.functional.smooth_l1_loss
        params = ('beta',)

        def __init__(self, beta=0.5, reduction='mean', loss_weight=1.0):
            super().__init__(reduction, loss_weight)
            self.beta = beta

    assert describe(Renamed).functional is functional.smooth_l1_loss
    assert describe(Renamed).paper.startswith('Girshick')


def test_generic_compute_and_repr_use_the_declaration():
    loss = mmdet_losses.SmoothL1Loss(beta=0.5, reduction='sum', loss_weight=2.0)
    assert repr(loss) == "SmoothL1Loss(beta=0.5, reduction='sum', loss_weight=2.0)"
    # 2 * (0.5 * 0.25^2 / 0.5 + (3 - 0.25)), written out
    value = loss(torch.tensor([0.25, 3.0]), torch.zeros(2))
    torch.testing.assert_close(value, torch.tensor(2 * (0.0625 + 2.75)))
    # a call's keyword that repeats a stored parameter is refused, as before
    with pytest.raises(TypeError, match='beta'):
        loss(torch.zeros(2), torch.zeros(2), beta=1.0)
    # repr_params keeps a class's own repr
    assert repr(mmdet_losses.YOLOIoULoss()) == (
        "YOLOIoULoss(iou_mode='ciou', bbox_format='xywh', return_iou=True, reduction='mean', "
        'loss_weight=1.0)')


def test_a_class_without_functional_form_says_so():
    class Undeclared(BaseLoss):
        pass

    with pytest.raises(NotImplementedError, match='Undeclared declares no functional form'):
        Undeclared()(torch.zeros(2), torch.zeros(2))


@pytest.mark.parametrize('name,cls', CLASSES, ids=IDS)
def test_init_validation_is_the_functional_forms(name, cls):
    """A NaN for a declared float parameter is refused by the constructor and by the
    functional form (on valid inputs) with the same message: one checker."""
    from test_contract import CASES
    case = next(c for c in CASES if c.cls_name == name)
    init = inspect.signature(cls).parameters
    floats = [p for p in cls.params
              if isinstance(init[p].default, float) and not isinstance(init[p].default, bool)]
    for param in floats:
        with pytest.raises(ValueError) as at_init:
            case.make(**{param: float('nan')})
        loss = case.make()
        pred, target, weight = case.inputs()
        with pytest.raises(ValueError) as at_call:
            cls.functional(pred, target, weight, 'mean', None,
                           **{**loss.functional_kwargs(), param: float('nan')})
        assert str(at_init.value) == str(at_call.value), (name, param)
