"""The fused C++ kernels are PyTorch operators (issue #12, root cause 1): registered under
``torch.ops.mmdet_losses`` with fake implementations and autograd formulas
(:mod:`mmdet_losses.ops._library`), so that

- ``torch.library.opcheck`` passes on every operator (schema, fake/meta implementation,
  autograd registration, AOT dispatch with dynamic shapes);
- meta tensors, FakeTensor tracing and ``torch.export`` give the right shapes through them;
- ``torch.compile(fullgraph=True)`` traces the kernel path of the losses and DIoU-NMS with no
  graph break, the kernel operator in the graph, values and gradients equal to eager; under
  AOT autograd the backward graph runs the kernel's backward operator, not the plain path;
- ``torch.func`` transforms take the documented fall-back (the plain path): ``grad`` equals
  autograd on the kernel path, ``vmap`` equals a loop.

Values are checked against hand-derived numbers, eager autograd on the kernel path (itself
tested against the plain reference in the kernel test modules) and loops.
"""
import math

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch._subclasses.fake_tensor import FakeTensorMode

import mmdet_losses
from mmdet_losses import functional as F
from mmdet_losses.ops import focal_kernel, iou_kernels, nms as nms_module, regression_kernel
from mmdet_losses.ops._library import kernel_allowed

KERNELS_BUILT = (iou_kernels.kernels_available() and focal_kernel.available()
                 and regression_kernel.kernels_available())
pytestmark = pytest.mark.skipif(not KERNELS_BUILT, reason='compiled kernels not built')

LOSS_OPS = ('iou_loss', 'iou_variant_loss', 'sigmoid_focal_loss_index', 'regression_loss')
OPS = LOSS_OPS + ('iou_loss_backward', 'iou_variant_loss_backward',
                  'sigmoid_focal_loss_index_backward', 'regression_loss_backward', 'diou_nms')
IOU_FAMILY = ('IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss',
              'WIoULoss', 'AlphaIoULoss', 'MPDIoULoss', 'InnerIoULoss', 'FocalerIoULoss',
              'ShapeIoULoss', 'NWDLoss')
REGRESSION = ('L1Loss', 'MSELoss', 'SmoothL1Loss', 'BalancedL1Loss')


# ----------------------------------------------------------------------------- inputs
def _boxes(n, seed, dtype=torch.float32):
    """Valid xyxy boxes: corners in [0, 100), sides 1 to 50."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = 1 + torch.rand(n, 2, generator=gen) * 49
    return torch.cat((xy, xy + wh), dim=1).to(dtype)


def _pairs(n=16, dtype=torch.float32):
    """Predictions that overlap their targets (every side moved by up to a quarter)."""
    target = _boxes(n, 0, dtype)
    gen = torch.Generator().manual_seed(1)
    wh = (target[:, 2:] - target[:, :2]).repeat(1, 2)
    pred = target + (torch.rand(n, 4, generator=gen, dtype=dtype) - 0.5) * 0.5 * wh
    pred = torch.cat((torch.minimum(pred[:, :2], pred[:, 2:]),
                      torch.maximum(pred[:, :2], pred[:, 2:])), dim=1)
    return pred, target


def _logits(n=12, c=5, dtype=torch.float32):
    gen = torch.Generator().manual_seed(2)
    logits = (torch.randn(n, c, generator=gen) * 2).to(dtype)
    labels = torch.randint(0, c + 1, (n,), generator=gen)  # c is background
    return logits, labels


def _build(name):
    kwargs = {'MPDIoULoss': dict(img_size=(200, 200))}.get(name, {})
    return getattr(mmdet_losses, name)(**kwargs)


def _op_cases():
    """(operator, arguments) with small float64 inputs, for opcheck and the meta shapes."""
    f64 = torch.float64
    pred, target = (b.requires_grad_(True) for b in _pairs(6, f64))
    grad = torch.rand(6, dtype=f64)
    logits, labels = _logits(6, 3, f64)
    logits.requires_grad_(True)
    anchor_weight = torch.rand(6, 1, dtype=f64)
    res_pred = torch.randn(2, 3, dtype=f64, requires_grad=True)
    res_target = torch.randn(2, 3, dtype=f64, requires_grad=True)
    wiou, siou = iou_kernels.FUSED_VARIANTS['wiou'], iou_kernels.FUSED_VARIANTS['siou']
    ciou, smooth_l1 = iou_kernels.FUSED_MODES['ciou'], regression_kernel.FUSED_KINDS['smooth_l1']
    balanced_l1 = regression_kernel.FUSED_KINDS['balanced_l1']
    ops = torch.ops.mmdet_losses
    return [
        ('iou_loss', ops.iou_loss, (pred, target, ciou, 1e-7, 0.5, True)),
        ('iou_loss_backward', ops.iou_loss_backward,
         (grad, pred.detach(), target.detach(), ciou, 1e-7, 0.5, True, True)),
        ('iou_variant_loss_wiou', ops.iou_variant_loss, (pred, target, wiou, 0, 1e-7, [])),
        ('iou_variant_loss_siou', ops.iou_variant_loss, (pred, target, siou, 0, 1e-7, [4.0])),
        ('iou_variant_loss_backward', ops.iou_variant_loss_backward,
         (grad, pred.detach(), target.detach(), siou, 0, 1e-7, [4.0], False)),
        ('focal_sum_with_grad', ops.sigmoid_focal_loss_index,
         (logits, labels, anchor_weight, 2.0, 0.25, True, True)),
        ('focal_none', ops.sigmoid_focal_loss_index,
         (logits, labels, None, 2.0, 0.25, False, False)),
        ('focal_backward', ops.sigmoid_focal_loss_index_backward,
         (torch.tensor(1.5, dtype=f64), logits.detach(), labels, anchor_weight, 2.0, 0.25)),
        ('regression_sum', ops.regression_loss,
         (res_pred, res_target, None, smooth_l1, 1.0, 0.5, 1.5, True)),
        ('regression_none', ops.regression_loss,
         (res_pred, res_target, torch.rand(2, 3, dtype=f64), balanced_l1, 1.0, 0.5, 1.5,
          False)),
        ('regression_backward', ops.regression_loss_backward,
         (torch.rand(2, 3, dtype=f64), res_pred.detach(), res_target.detach(), None,
          smooth_l1, 1.0, 0.5, 1.5, False, True)),
        ('diou_nms', ops.diou_nms, (_boxes(8, 3), torch.rand(8), None, 0.3, 1.0, 1e-7)),
        ('diou_nms_batched', ops.diou_nms,
         (_boxes(8, 3), torch.rand(8), torch.tensor([0, 1] * 4), 0.3, 1.0, 1e-7)),
    ]


OP_CASES = _op_cases() if KERNELS_BUILT else []


# ---------------------------------------------------------------------- registration
@pytest.mark.parametrize('name', OPS)
def test_every_kernel_is_an_operator(name):
    assert hasattr(torch.ops.mmdet_losses, name)
    qualified = f'mmdet_losses::{name}'
    for key in ('CPU', 'Meta'):  # the kernel, and the fake implementation for meta tensors
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualified, key), key


@pytest.mark.parametrize('case', OP_CASES, ids=[c[0] for c in OP_CASES])
def test_opcheck(case):
    """Schema, fake implementation, autograd registration, AOT dispatch (dynamic shapes)."""
    _, op, args = case
    torch.library.opcheck(op, args)


def test_operators_give_hand_derived_values():
    ops = torch.ops.mmdet_losses
    pred, target = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # Intersection 1, union 7: IoU loss 1 - 1/7.
    iou = ops.iou_loss(pred, target, iou_kernels.FUSED_MODES['iou'], 1e-7, 0.0, False)
    torch.testing.assert_close(iou, torch.tensor([6 / 7]))
    # Smooth L1 (beta 1) of residuals 0.5 and 3: 0.5 * 0.25 + (3 - 0.5).
    smooth = ops.regression_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), None,
                                 regression_kernel.FUSED_KINDS['smooth_l1'], 1.0, 0.5, 1.5, True)
    torch.testing.assert_close(smooth, torch.tensor(2.625))
    # One logit 0 of a positive: p = 1/2, alpha (1 - p)^2 (-log p) = 0.25 * 0.25 * log 2; its
    # gradient alpha * ((1 - p)^2 * (2 p log p - (1 - p))) at p = 1/2.
    loss, grad = ops.sigmoid_focal_loss_index(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long),
                                              None, 2.0, 0.25, True, True)
    torch.testing.assert_close(loss, torch.tensor(0.0625 * math.log(2)))
    torch.testing.assert_close(grad, torch.tensor([[0.25 * 0.25 * (-math.log(2) - 0.5)]]))
    # Box 1 overlaps box 0 (IoU 0.68): dropped; box 2 (IoU 0.43, centres 4 apart) is kept.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0],
                          [0.0, 4.0, 10.0, 14.0]])
    kept = ops.diou_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), None, 0.4, 1.0, 1e-7)
    assert kept.tolist() == [0, 2]
    # In groups: box 1 (group 1) is no longer suppressed by box 0 (group 0).
    kept = ops.diou_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.4,
                        1.0, 1e-7)
    assert kept.tolist() == [0, 1, 2]


# ------------------------------------------------------------- meta, fake and export
def _to_meta(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to('meta').requires_grad_(value.requires_grad)
    return value


@pytest.mark.parametrize('case', [c for c in OP_CASES if not c[0].startswith('diou_nms')],
                         ids=[c[0] for c in OP_CASES if not c[0].startswith('diou_nms')])
def test_operators_on_meta_tensors_give_the_shapes(case):
    _, op, args = case
    real = op(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    meta = op(*[_to_meta(a) for a in args])
    real, meta = (x if isinstance(x, tuple) else (x,) for x in (real, meta))
    for r, m in zip(real, meta):
        assert m.device.type == 'meta'
        assert (m.shape, m.dtype) == (r.shape, r.dtype)


@pytest.mark.parametrize('name', IOU_FAMILY + REGRESSION + ('FocalLoss',))
def test_kernel_losses_on_meta_tensors(name):
    module = _build(name).to('meta')  # WIoULoss keeps a running mean: on meta too
    if name == 'FocalLoss':
        pred, target = _logits()
    elif name in REGRESSION:
        pred, target = _pairs()
    else:
        pred, target = _pairs()
    pred, target = pred.to('meta').requires_grad_(True), target.to('meta')
    elementwise = module(pred, target, reduction_override='none')
    expected = pred.shape if name in REGRESSION + ('FocalLoss',) else pred.shape[:1]
    assert elementwise.device.type == 'meta' and elementwise.shape == expected
    reduced = module(pred, target)
    assert reduced.shape == () and reduced.dtype == pred.dtype
    reduced.backward()
    assert pred.grad.shape == pred.shape


@pytest.mark.parametrize('name', ('CIoULoss', 'SIoULoss', 'NWDLoss', 'SmoothL1Loss'))
def test_fake_tensors_trace_through_the_kernel(name):
    pred, target = _pairs()
    module = _build(name)
    mode = FakeTensorMode()
    with mode:
        out = module(mode.from_tensor(pred), mode.from_tensor(target), reduction_override='none')
    assert out.shape == module(pred, target, reduction_override='none').shape


@pytest.mark.parametrize('name,op', [('CIoULoss', 'iou_loss'), ('SIoULoss', 'iou_variant_loss'),
                                     ('FocalLoss', 'sigmoid_focal_loss_index'),
                                     ('SmoothL1Loss', 'regression_loss')])
def test_export_keeps_the_kernel_operator(name, op):
    args = _logits() if name == 'FocalLoss' else _pairs()
    module = _build(name)
    program = torch.export.export(module, args)
    assert f'mmdet_losses.{op}.default' in {str(n.target) for n in program.graph.nodes}
    torch.testing.assert_close(program.module()(*args), module(*args))


# ------------------------------------------------------------------------ torch.compile
def _kernel_targets(graphs):
    return {str(n.target) for g in graphs for n in g.graph.nodes
            if str(n.target).startswith('mmdet_losses.')}


COMPILED = [('IoULoss', 'iou_loss'), ('CIoULoss', 'iou_loss'), ('SIoULoss', 'iou_variant_loss'),
            ('WIoULoss', 'iou_variant_loss'), ('FocalLoss', 'sigmoid_focal_loss_index'),
            ('SmoothL1Loss', 'regression_loss')]


@pytest.mark.parametrize('name,op', COMPILED)
def test_compile_fullgraph_on_the_kernel_path_equals_eager(name, op):
    if name == 'FocalLoss':
        pred, target = _logits()
        kwargs = dict(weight=torch.rand(pred.shape[0], 1), avg_factor=5.0)
    else:
        pred, target = _pairs()
        kwargs = dict(weight=torch.rand(pred.shape[0]), avg_factor=7.0)
        if name == 'SmoothL1Loss':
            kwargs['weight'] = torch.rand(pred.shape)
    eager_module, compiled_module = _build(name), _build(name)  # WIoU: a running mean each

    def step(module, x):
        return module(x, target, **kwargs)

    explained = torch._dynamo.explain(step)(_build(name), pred.clone().requires_grad_(True))
    assert explained.graph_break_count == 0
    assert f'mmdet_losses.{op}.default' in _kernel_targets(explained.graphs)
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend='eager')
    x_eager, x_compiled = (pred.clone().requires_grad_(True) for _ in range(2))
    loss_eager, loss_compiled = step(eager_module, x_eager), compiled(compiled_module, x_compiled)
    loss_eager.backward()
    loss_compiled.backward()
    torch.testing.assert_close(loss_compiled, loss_eager)
    torch.testing.assert_close(x_compiled.grad, x_eager.grad)


@pytest.mark.parametrize('batched', [False, True], ids=['diou_nms', 'batched_diou_nms'])
def test_compile_fullgraph_diou_nms_equals_eager(batched):
    boxes, scores = _boxes(40, 4), torch.rand(40, generator=torch.Generator().manual_seed(5))
    classes = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(6))

    def nms(b, s):
        if batched:  # one pass in groups, no loop over the classes: no graph break either
            return mmdet_losses.batched_diou_nms(b, s, classes, 0.2)
        return mmdet_losses.diou_nms(b, s, 0.2)

    if not batched:  # (explain counts a break in the batched form that fullgraph=True,
        # below, does not have: it traces without error, one graph)
        assert torch._dynamo.explain(nms)(boxes, scores).graph_break_count == 0
    torch._dynamo.reset()
    graphs = []

    def keep(graph, example_inputs):  # the 'eager' backend, keeping the graph
        graphs.append(graph)
        return graph

    kept = torch.compile(nms, fullgraph=True, backend=keep)(boxes, scores)
    assert len(graphs) == 1
    assert 'mmdet_losses.diou_nms.default' in _kernel_targets(graphs)  # its size data-dependent
    expected = nms(boxes, scores)
    assert 0 < len(expected) < 40  # some boxes are suppressed, some kept
    assert torch.equal(kept, expected)


@pytest.mark.parametrize('name,backward_op', [('CIoULoss', 'iou_loss_backward'),
                                              ('SIoULoss', 'iou_variant_loss_backward'),
                                              ('SmoothL1Loss', 'regression_loss_backward'),
                                              ('FocalLoss', None)])
def test_aot_backward_runs_the_kernel(name, backward_op):
    """Compiled (AOT autograd), the backward graph holds the kernel's backward operator, not
    the plain path's ops; FocalLoss's gradient comes from its forward, only scaled there."""
    pred, target = _logits() if name == 'FocalLoss' else _pairs()
    graphs = {}

    def keep(kind):
        def compiler(graph, example_inputs):
            graphs[kind] = graph
            return make_boxed_func(graph)
        return compiler

    torch._dynamo.reset()
    module = _build(name)
    compiled = torch.compile(module, fullgraph=True,
                             backend=aot_autograd(fw_compiler=keep('fw'), bw_compiler=keep('bw')))
    x_compiled, x_eager = (pred.clone().requires_grad_(True) for _ in range(2))
    compiled(x_compiled, target).backward()
    module(x_eager, target).backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad)
    backward_targets = {str(n.target) for n in graphs['bw'].graph.nodes if n.op == 'call_function'}
    # The reduction's backward and the kernel's: no op of the plain path's geometry.
    bookkeeping = {'aten.mul.Tensor', 'aten.div.Tensor', 'aten.expand.default',
                   'aten.view.default', 'aten.as_strided.default', '<built-in function getitem>'}
    if backward_op is not None:
        assert f'mmdet_losses.{backward_op}.default' in backward_targets
        backward_targets.remove(f'mmdet_losses.{backward_op}.default')
    assert backward_targets <= bookkeeping


# -------------------------------------------------------------------------- torch.func
FUNCTIONAL = [('iou_loss', dict(mode='linear')), ('ciou_loss', {}), ('siou_loss', {}),
              ('wiou_loss', {}), ('focal_loss', {}), ('smooth_l1_loss', {}),
              ('balanced_l1_loss', {})]


def _functional_inputs(name):
    return _logits(dtype=torch.float64) if name == 'focal_loss' else _pairs(dtype=torch.float64)


@pytest.mark.parametrize('name,kwargs', FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_func_grad_equals_autograd_on_the_kernel_path(name, kwargs):
    pred, target = _functional_inputs(name)

    def loss(x):
        return getattr(F, name)(x, target, **kwargs)

    x = pred.clone().requires_grad_(True)
    loss(x).backward()  # autograd through the kernel
    torch.testing.assert_close(torch.func.grad(loss)(pred), x.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('name,kwargs', FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_vmap_equals_a_loop(name, kwargs):
    pred, target = _functional_inputs(name)
    batch = torch.stack((pred, pred * 1.01, pred + 0.5))

    def loss(x):
        return getattr(F, name)(x, target, **kwargs)

    torch.testing.assert_close(torch.func.vmap(loss)(batch),
                               torch.stack([loss(x) for x in batch]), rtol=1e-9, atol=1e-12)


def test_no_kernel_inside_a_func_transform():
    seen = []

    def probe(x):
        seen.append(kernel_allowed())
        return x.sum()

    torch.func.grad(probe)(torch.ones(2))
    assert kernel_allowed() and seen == [False]
