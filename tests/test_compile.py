"""Every registered loss as a native PyTorch citizen (issue #12): ``torch.compile``,
``torch.func`` and meta tensors, on the kernel path and on the plain path.

Parametrised over :data:`test_contract.CASES`, whose completeness
``test_contract.test_every_registered_loss_has_inputs`` enforces: a loss registered later is
covered here without an edit. Every case runs on the ``plain`` path (every kernel switched
off, as ``test_contract.plain_path``), and on the ``kernel`` path (the kernels as built) when
it has one (:data:`KERNEL_IDS`: the kernels change the operators its call dispatches; for the
other cases the kernel path is the plain path again). On each:

1. ``torch.compile(fullgraph=True, backend='eager')`` of a training step (the module in
   training mode: WIoU's running mean is updated inside the graph) equals eager: the loss
   with reduction 'none' and a weight, the mean without a weight over a tensor
   ``avg_factor``, the gradient of pred, and the buffers afterwards; the graph holds the
   kernel operators (``torch.ops.mmdet_losses``) the eager call runs;
2. zero graph breaks (``torch._dynamo.explain``) of a call with the module's defaults, with
   the reasons in the failure message;
3. ``torch.func.grad`` of the loss with respect to pred equals ``torch.autograd.grad``;
4. meta tensors (module and inputs on 'meta'): reduction 'none' has the eager result's shape
   and dtype, 'mean' is a scalar;
5. the default backend (inductor, fwd and bwd compiled) equals eager on the weighted mean,
   for a few losses only (:data:`INDUCTOR_IDS`: each costs seconds of compilation).

Plus constructor arguments given as tensors (their values are read eagerly, not while
compiling) and every term of ``boxes.BoxPair`` in one graph.

Expected values are the same call run eagerly (the compiled graph must not change the maths,
which the contract tests check against independent references). Inputs are small (5
samples) and dynamo's caches are reset around each test: about a minute of CPU time.
"""
import contextlib
import dataclasses

import pytest
import torch
from test_contract import BY_ID, CASES, KERNEL_SLOTS, plain_path
from torch.utils._python_dispatch import TorchDispatchMode

IDS = [c.id for c in CASES]
# one IoU loss on its fused kernel, the focal kernel, the regression kernel, and a loss with
# no kernel (the label check of the index targets)
INDUCTOR_IDS = ['CIoULoss', 'FocalLoss-index', 'SmoothL1Loss', 'CrossEntropyLoss']
AVG_FACTOR = 2.5
KERNEL_NAMESPACE = 'mmdet_losses'  # the operators of mmdet_losses.ops._library


class DispatchedOps(TorchDispatchMode):
    """Records the name of every operator dispatched while active."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def dispatched(fn, *args):
    """The operators ``fn(*args)`` dispatches, in order."""
    with DispatchedOps() as ops:
        fn(*args)
    return ops.names


def kernel_ops(names):
    return {n for n in names if n.startswith(KERNEL_NAMESPACE + '.')}


def case_call(case):
    return lambda: case.make()(*case.inputs(5))


def has_kernel_path(case) -> bool:
    """Whether the kernels change what ``case`` computes: the operators its call dispatches
    differ with the kernels on and off (a kernel operator, or a kernel reached any other
    way, replaces plain operators)."""
    with plain_path():
        plain = dispatched(case_call(case))
    return dispatched(case_call(case)) != plain


# Every case runs on the plain path (every kernel off); those with a kernel path run on it
# too (for the others it is the plain path again).
KERNEL_IDS = [c.id for c in CASES if has_kernel_path(c)]
PATH_PARAMS = ([pytest.param(i, 'plain', id=f'{i}-plain') for i in IDS]
               + [pytest.param(i, 'kernel', id=f'{i}-kernel') for i in KERNEL_IDS])
GRAD_PATH_PARAMS = [p for p in PATH_PARAMS if BY_ID[p.values[0]].grad]


def test_kernel_paths_found():
    """The detection of kernel paths is not vacuous: the IoU family, the regression and the
    index focal losses run their kernels."""
    import os
    if os.environ.get('MMDET_LOSSES_NO_EXT') == '1':
        pytest.skip('MMDET_LOSSES_NO_EXT=1: kernels deliberately not loaded')
    assert all(getattr(m, a) is not None for m, a in KERNEL_SLOTS), 'kernels not built'
    assert {'CIoULoss', 'WIoULoss', 'SmoothL1Loss', 'FocalLoss-index'} <= set(KERNEL_IDS), \
        KERNEL_IDS
    assert 'CrossEntropyLoss' not in KERNEL_IDS


def test_inductor_ids_are_cases():
    """A renamed case is not silently dropped from the inductor subset."""
    assert set(INDUCTOR_IDS) <= set(BY_ID), sorted(set(INDUCTOR_IDS) - set(BY_ID))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each case compiles from scratch (no cache hit from another case, no recompilation
    limit reached across cases)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def on_path(path):
    return plain_path() if path == 'plain' else contextlib.nullcontext()


def tensors_map(value, fn):
    """Apply ``fn`` to every tensor of a target (a tensor or a tuple of them)."""
    if isinstance(value, tuple):
        return tuple(tensors_map(v, fn) for v in value)
    return fn(value)


def training_step(module):
    """Two calls, as a head makes them: the element-wise loss with a weight, and the mean
    without a weight over a tensor avg_factor (mmdet's heads pass one)."""
    def step(pred, target, weight, avg_factor):
        return (module(pred, target, weight, reduction_override='none'),
                module(pred, target, None, avg_factor=avg_factor, reduction_override='mean'))
    return step


def mean_step(module):
    """One call: the weighted mean over a tensor avg_factor."""
    def step(pred, target, weight, avg_factor):
        return (module(pred, target, weight, avg_factor=avg_factor, reduction_override='mean'),)
    return step


def run_step(case, step_of, pred0, target, weight):
    """(losses, gradient of pred, buffers) of one training step on a fresh module; the
    gradient is that of a random combination of every loss returned, so each one's backward
    is compared."""
    module = case.make().train()
    step = step_of(module)
    pred = pred0.detach().clone().requires_grad_(case.grad)
    losses = step(pred, target, weight, torch.tensor(AVG_FACTOR))
    grad = None
    if case.grad:
        gen = torch.Generator().manual_seed(1)
        total = sum((loss * torch.rand(loss.shape, generator=gen, dtype=loss.dtype)).sum()
                    for loss in losses)
        (grad,) = torch.autograd.grad(total, pred)
    buffers = {k: v.detach().clone() for k, v in module.named_buffers()}
    return [loss.detach() for loss in losses], grad, buffers


def assert_same_step(got, want, rtol=None, atol=None):
    (losses, grad, buffers), (want_losses, want_grad, want_buffers) = got, want
    for i, (a, b) in enumerate(zip(losses, want_losses)):
        assert a.dtype == b.dtype, f'loss {i}: dtype {a.dtype}, eager {b.dtype}'
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True,
                                   msg=lambda m, i=i: f'loss {i} differs from eager: {m}')
    if want_grad is not None:
        torch.testing.assert_close(grad, want_grad, rtol=rtol, atol=atol, equal_nan=True,
                                   msg=lambda m: f'gradient differs from eager: {m}')
    assert buffers.keys() == want_buffers.keys()
    for k, v in buffers.items():
        torch.testing.assert_close(v, want_buffers[k], rtol=rtol, atol=atol,
                                   msg=lambda m, k=k: f'buffer {k} differs from eager: {m}')


# ------------------------------------------------------------ 1. fullgraph, eager backend
@pytest.mark.parametrize('case_id,path', PATH_PARAMS)
def test_compile_fullgraph_equals_eager(case_id, path):
    """The graph holds the kernel operators the eager call dispatches (on the kernel path the
    compiled step does not fall back to the plain path; the plain path dispatches none)."""
    case = BY_ID[case_id]
    inputs = case.inputs(5)
    graph_ops = set()

    def eager_backend(gm, example_inputs):  # backend='eager', recording the graph's nodes
        graph_ops.update(str(node.target) for node in gm.graph.nodes)
        return gm.forward

    with on_path(path):
        want = run_step(case, training_step, *inputs)
        got = run_step(case, lambda m: torch.compile(training_step(m), fullgraph=True,
                                                     backend=eager_backend), *inputs)
        pred, target, weight = inputs
        eager_kernels = kernel_ops(dispatched(training_step(case.make().train()), pred, target,
                                              weight, torch.tensor(AVG_FACTOR)))
    assert_same_step(got, want)
    assert eager_kernels <= graph_ops, \
        f'kernel operators of the eager call missing in the graph: {eager_kernels - graph_ops}'
    if path == 'plain':
        assert not eager_kernels, f'kernel operators on the plain path: {eager_kernels}'


# -------------------------------------------------------------------- 2. no graph breaks
@pytest.mark.parametrize('case_id,path', PATH_PARAMS)
def test_no_graph_breaks(case_id, path):
    """A call with the module's defaults (test 1's fullgraph=True fails at the first break of
    any reduction path; this lists every break of the default one, with its reason)."""
    case = BY_ID[case_id]
    pred, target, weight = case.inputs(5)
    pred.requires_grad_(case.grad)
    with on_path(path):
        explained = torch._dynamo.explain(case.make().train())(pred, target, weight)
    reasons = [str(b.reason).strip().splitlines()[0] for b in explained.break_reasons]
    assert explained.graph_break_count == 0, \
        f'{explained.graph_break_count} graph breaks: {reasons}'


# --------------------------------------------------------------------- 3. torch.func.grad
@pytest.mark.parametrize('case_id,path', GRAD_PATH_PARAMS)
def test_func_grad_equals_autograd(case_id, path):
    """Eval mode: a transform cannot write a transformed value into a buffer (WIoU's
    running mean); in eval mode the loss is a pure function of pred."""
    case = BY_ID[case_id]
    pred, target, weight = case.inputs(5)
    module = case.make().eval()

    def loss_of(p):
        return module(p, target, weight, reduction_override='mean') \
            + 0.5 * module(p, target, None, reduction_override='sum')
    with on_path(path):
        got = torch.func.grad(loss_of)(pred)
        leaf = pred.clone().requires_grad_()
        (want,) = torch.autograd.grad(loss_of(leaf), leaf)
    torch.testing.assert_close(got, want, equal_nan=True)


# ------------------------------------------------------------------------- 4. meta tensors
@pytest.mark.parametrize('case_id,path', PATH_PARAMS)
def test_meta_tensors_give_shapes(case_id, path):
    case = BY_ID[case_id]
    pred, target, weight = case.inputs(5)
    with on_path(path):
        want = case.make()(pred, target, weight, reduction_override='none')
        module = case.make().to('meta')  # CenterLoss's centres, WIoU's running mean
        meta = [tensors_map(t, lambda t: t.to('meta')) for t in (pred, target, weight)]
        none = module(*meta, reduction_override='none')
        mean = module(*meta, reduction_override='mean')
    assert none.device.type == 'meta' and mean.device.type == 'meta'
    assert none.shape == want.shape and none.dtype == want.dtype, \
        f"reduction='none': {tuple(none.shape)} {none.dtype}, eager {tuple(want.shape)} " \
        f'{want.dtype}'
    assert mean.shape == () and mean.dtype == want.dtype, \
        f"reduction='mean': shape {tuple(mean.shape)} {mean.dtype}"


# -------------------------------------------------------------------- 5. inductor, a few
@pytest.mark.parametrize('case_id,path', [p for p in PATH_PARAMS
                                          if p.values[0] in INDUCTOR_IDS])
def test_inductor_equals_eager(case_id, path):
    case = BY_ID[case_id]
    inputs = case.inputs(5)
    with on_path(path):
        want = run_step(case, mean_step, *inputs)
        got = run_step(case, lambda m: torch.compile(mean_step(m), fullgraph=True), *inputs)
    # inductor fuses and reorders float32 arithmetic
    assert_same_step(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------- the pieces that used to break the graph
# Constructor arguments given as tensors: their values are checked eagerly on the CPU
# (tests/test_contract_errors.py), not while compiling.
TENSOR_ARGUMENTS = [
    ('BalancedCrossEntropyLoss', dict(class_counts=torch.tensor([3.0, 1.0, 2.0]), beta=0.9)),
    ('CrossEntropyLoss', dict(class_weight=torch.tensor([1.0, 2.0, 0.5]))),
    ('BinaryCrossEntropyLoss', dict(pos_weight=torch.tensor([1.0, 2.0, 3.0]))),
    ('SoftmaxFocalLoss', dict(alpha=torch.tensor([0.2, 0.3, 0.5]))),
]


@pytest.mark.parametrize('name,ctor', TENSOR_ARGUMENTS, ids=[n for n, _ in TENSOR_ARGUMENTS])
def test_compile_tensor_arguments(name, ctor):
    case = next(c for c in CASES if c.cls_name == name)
    inputs = case.inputs(5)
    with_ctor = dataclasses.replace(case, ctor={**case.ctor, **ctor})
    want = run_step(with_ctor, training_step, *inputs)
    got = run_step(with_ctor, lambda m: torch.compile(training_step(m), fullgraph=True,
                                                      backend='eager'), *inputs)
    assert_same_step(got, want)


def test_box_pair_terms_compile_without_breaks():
    """Every cached term of a BoxPair (a lock-free cached property: functools' takes an
    RLock, which dynamo cannot enter), each read twice (the second read is the cached
    value), and the IoU family built on them, in one graph equal to eager."""
    from mmdet_losses.boxes import BoxPair
    names = sorted(n for n, v in vars(BoxPair).items()
                   if type(v).__name__ == 'cached_property')
    assert {'inter', 'union', 'rho2', 'c2', 'nonfinite'} <= set(names), names

    def terms(a, b):
        pair = BoxPair(a, b)
        cached = [getattr(pair, n) for n in names]
        assert all(getattr(pair, n) is t for n, t in zip(names, cached))
        return cached + [pair.iou(1e-6), pair.giou(1e-6), pair.diou(1e-6),
                         pair.ciou(1e-6, 0.5), pair.aspect_v()]

    a, b = BY_ID['CIoULoss'].inputs(5)[:2]
    explained = torch._dynamo.explain(terms)(a, b)
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    torch._dynamo.reset()
    got = torch.compile(terms, fullgraph=True, backend='eager')(a, b)
    labels = names + ['iou', 'giou', 'diou', 'ciou', 'aspect_v']
    for label, x, y in zip(labels, got, terms(a, b)):
        torch.testing.assert_close(x, y, equal_nan=True, msg=lambda m, n=label: f'{n}: {m}')


def test_value_checks_eager_only():
    """The checks that read values run eagerly on CPU tensors (as strict as before) and are
    skipped while compiling and under a torch.func transform, where the values are unknown."""
    from mmdet_losses.validation import reads_values
    x = torch.tensor([1.0, 2.0])
    assert reads_values(x) and not reads_values(x.to('meta'))
    compiled = torch.compile(lambda t: t + 1 if reads_values(t) else t - 1, fullgraph=True,
                             backend='eager')
    torch.testing.assert_close(compiled(x), x - 1)
    seen = []
    torch.func.grad(lambda t: (seen.append(reads_values(t)), t.sum())[1])(x)
    assert seen == [False]
    case = BY_ID['BalancedCrossEntropyLoss']
    pred, target, _ = case.inputs(5)
    loss = case.make(class_counts=torch.tensor([3.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match='class_counts must all be > 0'):
        loss(pred, target)
    with pytest.raises(ValueError, match='target must hold class indices'):
        BY_ID['CrossEntropyLoss'].make()(pred, torch.full_like(target, 7))
