"""The thirteen IoU-family losses: each against its paper's formula written plainly here
(float64), torchvision's formulas for IoU/GIoU/DIoU/CIoU without the gate, hand-derived
geometry, float64 gradcheck, the adversarial corpus in three dtypes, empty input, batch shapes,
box formats, weights and bad input. mmdet as the reference: test_iou_mmdet.py; WIoU's running
mean: test_iou_wiou.py."""
import math

import pytest
import torch
from _helpers import assert_finite, assert_zero_in_graph, double_leaf

import mmdet_losses
import mmdet_losses.functional as F
from mmdet_losses import box_convert
from mmdet_losses.functional import iou as iou_module

# ------------------------------------------------------------------ the loss table
# name -> (module class, functional form, parameters exercised in the generic tests)
LOSSES = {
    'iou': (mmdet_losses.IoULoss, F.iou_loss, dict(mode='log')),
    'giou': (mmdet_losses.GIoULoss, F.giou_loss, {}),
    'diou': (mmdet_losses.DIoULoss, F.diou_loss, {}),
    'ciou': (mmdet_losses.CIoULoss, F.ciou_loss, {}),
    'eiou': (mmdet_losses.EIoULoss, F.eiou_loss, dict(gamma=0.5)),
    'siou': (mmdet_losses.SIoULoss, F.siou_loss, {}),
    'wiou': (mmdet_losses.WIoULoss, F.wiou_loss, {}),
    'alpha_iou': (mmdet_losses.AlphaIoULoss, F.alpha_iou_loss, dict(base='ciou')),
    'mpdiou': (mmdet_losses.MPDIoULoss, F.mpdiou_loss, dict(img_size=(640, 480))),
    'inner_iou': (mmdet_losses.InnerIoULoss, F.inner_iou_loss, dict(ratio=1.2, base='ciou')),
    'focaler_iou': (mmdet_losses.FocalerIoULoss, F.focaler_iou_loss, dict(base='siou')),
    'shape_iou': (mmdet_losses.ShapeIoULoss, F.shape_iou_loss, dict(scale=0.5)),
    'nwd': (mmdet_losses.NWDLoss, F.nwd_loss, dict(constant=12.8)),
}
# further parameter sets the corpus and empty-input tests also run
EXTRA_PARAMS = {
    'iou': [dict(mode='linear'), dict(mode='square')],
    'ciou': [dict(iou_gate=None)],
    'eiou': [dict(gamma=0.0)],
    'wiou': [dict(version='v1'), dict(version='v2')],
    'alpha_iou': [dict(base='iou', alpha=0.5), dict(base='giou', alpha=0.5),
                  dict(base='diou')],
    'inner_iou': [dict(base=b, ratio=0.7) for b in ('iou', 'giou', 'diou', 'siou', 'eiou')],
    'focaler_iou': [dict(base=b, d=0.2, u=0.8) for b in ('iou', 'giou', 'diou', 'ciou',
                                                         'eiou')],
    'shape_iou': [dict(scale=0.0)],
}
NAMES = list(LOSSES)


@pytest.fixture(params=['default', 'plain'])
def iou_path(request, monkeypatch):
    """Run a test on the default path (the fused kernels where they are built) and on the
    plain PyTorch path."""
    if request.param == 'plain':
        monkeypatch.setattr(iou_module, 'fused_iou_loss', lambda *args: None)
        monkeypatch.setattr(iou_module, 'fused_variant_loss', lambda *args: None)
    return request.param


def all_params(name):
    return [LOSSES[name][2]] + EXTRA_PARAMS.get(name, [])


def random_pairs(n, seed=0, dtype=torch.float64):
    """Targets and predictions near them (IoU spread over (0, 1)), well-formed boxes."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 50
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 20 + 2
    target = torch.cat((xy, xy + wh), -1)
    pred = target + (torch.rand(n, 4, generator=g, dtype=dtype) - 0.5) * wh.repeat(1, 2)
    return pred, target


# ------------------------------------------------- references, written from the papers
def parts(p, t):
    """Plain geometry of aligned xyxy boxes (no eps: the test boxes are well-formed)."""
    w, h, wg, hg = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    iw = (torch.min(p[:, 2], t[:, 2]) - torch.max(p[:, 0], t[:, 0])).clamp(min=0)
    ih = (torch.min(p[:, 3], t[:, 3]) - torch.max(p[:, 1], t[:, 1])).clamp(min=0)
    inter = iw * ih
    union = w * h + wg * hg - inter
    cw = torch.max(p[:, 2], t[:, 2]) - torch.min(p[:, 0], t[:, 0])
    ch = torch.max(p[:, 3], t[:, 3]) - torch.min(p[:, 1], t[:, 1])
    dx = (t[:, 0] + t[:, 2]) / 2 - (p[:, 0] + p[:, 2]) / 2
    dy = (t[:, 1] + t[:, 3]) / 2 - (p[:, 1] + p[:, 3]) / 2
    return dict(w=w, h=h, wg=wg, hg=hg, inter=inter, union=union, iou=inter / union, cw=cw,
                ch=ch, dx=dx, dy=dy, rho2=dx ** 2 + dy ** 2, c2=cw ** 2 + ch ** 2)


def ref_ciou_v_alpha(g, gate=None):
    v = 4 / math.pi ** 2 * (torch.atan(g['wg'] / g['hg']) - torch.atan(g['w'] / g['h'])) ** 2
    with torch.no_grad():
        alpha = v / (1 - g['iou'] + v)
        if gate is not None:
            alpha = alpha * (g['iou'] > gate)
    return v, alpha


def ref_base(name, g):
    """L_base of the composite losses."""
    if name == 'iou':
        return 1 - g['iou']
    if name == 'giou':
        return 1 - g['iou'] + (g['cw'] * g['ch'] - g['union']) / (g['cw'] * g['ch'])
    if name == 'diou':
        return 1 - g['iou'] + g['rho2'] / g['c2']
    if name == 'ciou':
        v, alpha = ref_ciou_v_alpha(g)
        return 1 - g['iou'] + g['rho2'] / g['c2'] + alpha * v
    if name == 'eiou':
        return ref_eiou(g, 0.0)
    return ref_siou(g, 4.0)


def ref_eiou(g, gamma):
    loss = (1 - g['iou'] + g['rho2'] / g['c2'] + (g['w'] - g['wg']) ** 2 / g['cw'] ** 2
            + (g['h'] - g['hg']) ** 2 / g['ch'] ** 2)
    return loss * g['iou'].detach() ** gamma


def ref_siou(g, theta):
    """The paper's equations: Lambda = 1 - 2 sin^2(arcsin(x) - pi/4), x = c_h / sigma."""
    sigma = torch.sqrt(g['rho2'])
    x = g['dy'].abs() / sigma
    angle = 1 - 2 * torch.sin(torch.arcsin(x) - math.pi / 4) ** 2
    gamma = 2 - angle
    distance = sum(1 - torch.exp(-gamma * rho) for rho in ((g['dx'] / g['cw']) ** 2,
                                                           (g['dy'] / g['ch']) ** 2))
    omega_w = (g['w'] - g['wg']).abs() / torch.max(g['w'], g['wg'])
    omega_h = (g['h'] - g['hg']).abs() / torch.max(g['h'], g['hg'])
    shape = (1 - torch.exp(-omega_w)) ** theta + (1 - torch.exp(-omega_h)) ** theta
    return 1 - g['iou'] + (distance + shape) / 2


def ref_wiou(g, version, alpha=1.9, delta=3.0, mean=None):
    l_iou = 1 - g['iou']
    loss = torch.exp(g['rho2'] / (g['cw'] ** 2 + g['ch'] ** 2).detach()) * l_iou
    if version == 'v1':
        return loss
    mean = l_iou.detach().mean() if mean is None else mean
    beta = l_iou.detach() / mean
    if version == 'v2':
        return loss * beta ** 0.5
    return loss * beta / (delta * alpha ** (beta - delta))


def ref_alpha(g, alpha, base):
    loss = 1 - g['iou'] ** alpha
    if base == 'giou':
        area = g['cw'] * g['ch']
        loss = loss + ((area - g['union']) / area) ** alpha
    if base in ('diou', 'ciou'):
        loss = loss + (g['rho2'] / g['c2']) ** alpha
    if base == 'ciou':
        v, beta = ref_ciou_v_alpha(g)
        loss = loss + (beta * v) ** alpha
    return loss


def ref_inner(p, t, ratio, base):
    def scale(b):
        c, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) * ratio / 2
        return torch.cat((c - half, c + half), -1)
    g = parts(p, t)
    return ref_base(base, g) + g['iou'] - parts(scale(p), scale(t))['iou']


def ref_shape(g, scale):
    ww = 2 * g['wg'] ** scale / (g['wg'] ** scale + g['hg'] ** scale)
    hh = 2 * g['hg'] ** scale / (g['wg'] ** scale + g['hg'] ** scale)
    distance = hh * g['dx'] ** 2 / g['c2'] + ww * g['dy'] ** 2 / g['c2']
    omega_w = hh * (g['w'] - g['wg']).abs() / torch.max(g['w'], g['wg'])
    omega_h = ww * (g['h'] - g['hg']).abs() / torch.max(g['h'], g['hg'])
    shape = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return 1 - g['iou'] + distance + 0.5 * shape


def ref_nwd(p, t, constant):
    def gauss(b):  # [cx, cy, w/2, h/2]
        return torch.cat(((b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) / 2), -1)
    return 1 - torch.exp(-torch.linalg.norm(gauss(p) - gauss(t), dim=-1) / constant)


def ref_mpdiou(g, p, t, w, h):
    d1 = ((p[:, :2] - t[:, :2]) ** 2).sum(-1)
    d2 = ((p[:, 2:] - t[:, 2:]) ** 2).sum(-1)
    return 1 - g['iou'] + d1 / (w ** 2 + h ** 2) + d2 / (w ** 2 + h ** 2)


# (loss name, params, reference(p, t) -> (N,)): one row per variant and parameter set
REFERENCE_CASES = [
    ('iou', dict(mode='linear'), lambda p, t: 1 - parts(p, t)['iou']),
    ('iou', dict(mode='square'), lambda p, t: 1 - parts(p, t)['iou'] ** 2),
    ('iou', dict(mode='log'), lambda p, t: -torch.log(parts(p, t)['iou'])),
    ('giou', {}, lambda p, t: ref_base('giou', parts(p, t))),
    ('diou', {}, lambda p, t: ref_base('diou', parts(p, t))),
    ('ciou', dict(iou_gate=None), lambda p, t: ref_base('ciou', parts(p, t))),
    ('ciou', {}, lambda p, t: (lambda g: ref_base('diou', g) + math.prod(
        ref_ciou_v_alpha(g, gate=0.5)))(parts(p, t))),
    ('eiou', {}, lambda p, t: ref_eiou(parts(p, t), 0.0)),
    ('eiou', dict(gamma=0.5), lambda p, t: ref_eiou(parts(p, t), 0.5)),
    ('siou', {}, lambda p, t: ref_siou(parts(p, t), 4.0)),
    ('siou', dict(theta=2.0), lambda p, t: ref_siou(parts(p, t), 2.0)),
    ('wiou', dict(version='v1'), lambda p, t: ref_wiou(parts(p, t), 'v1')),
    ('wiou', dict(version='v2'), lambda p, t: ref_wiou(parts(p, t), 'v2')),
    ('wiou', dict(version='v3'), lambda p, t: ref_wiou(parts(p, t), 'v3')),
    ('wiou', dict(version='v3', alpha=2.5, delta=2.0, running_mean=torch.tensor(0.4)),
     lambda p, t: ref_wiou(parts(p, t), 'v3', 2.5, 2.0, mean=0.4)),
    *[('alpha_iou', dict(alpha=a, base=b), lambda p, t, a=a, b=b: ref_alpha(parts(p, t), a, b))
      for a, b in ((3.0, 'iou'), (3.0, 'giou'), (2.0, 'diou'), (3.0, 'ciou'), (0.5, 'ciou'))],
    ('mpdiou', dict(img_size=(64, 48)), lambda p, t: ref_mpdiou(parts(p, t), p, t, 64, 48)),
    ('mpdiou', dict(img_size=50), lambda p, t: ref_mpdiou(parts(p, t), p, t, 50, 50)),
    *[('inner_iou', dict(ratio=r, base=b), lambda p, t, r=r, b=b: ref_inner(p, t, r, b))
      for r, b in ((0.75, 'iou'), (1.3, 'giou'), (0.6, 'diou'), (0.8, 'ciou'),
                   (1.1, 'siou'), (0.9, 'eiou'))],
    *[('focaler_iou', dict(d=d, u=u, base=b), lambda p, t, d=d, u=u, b=b: (
        lambda g: ref_base(b, g) + g['iou'] - ((g['iou'] - d) / (u - d)).clamp(0, 1))(
            parts(p, t)))
      for d, u, b in ((0.0, 0.95, 'iou'), (0.2, 0.7, 'giou'), (0.1, 0.9, 'ciou'),
                      (0.3, 0.6, 'siou'), (0.0, 0.5, 'eiou'), (0.05, 1.0, 'diou'))],
    ('shape_iou', {}, lambda p, t: ref_shape(parts(p, t), 0.0)),
    ('shape_iou', dict(scale=0.5), lambda p, t: ref_shape(parts(p, t), 0.5)),
    ('nwd', {}, lambda p, t: ref_nwd(p, t, 12.8)),
    ('nwd', dict(constant=3.0), lambda p, t: ref_nwd(p, t, 3.0)),
]


@pytest.mark.parametrize('name, params, reference', REFERENCE_CASES,
                         ids=[f'{n}-{p}' for n, p, _ in REFERENCE_CASES])
def test_against_paper_formula(name, params, reference, iou_path):
    """Values and gradients (including the detached factors: CIoU's alpha, Focal-EIoU's
    IoU^gamma, WIoU's denominator and focusing) equal the plain reference's."""
    _, fn, _ = LOSSES[name]
    pred, target = random_pairs(40, seed=len(name))
    pred_ref = pred.clone().requires_grad_(True)
    pred = pred.requires_grad_(True)
    got = fn(pred, target, reduction='none', eps=1e-12, **params) if name != 'nwd' else \
        fn(pred, target, reduction='none', **params)
    expected = reference(pred_ref, target)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)
    got.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(pred.grad, pred_ref.grad, rtol=1e-6, atol=1e-9)


# torchvision.ops' *_box_iou_loss (eps=1e-7), written out: the eps placements differ from
# ours only by terms of order eps.
def torchvision_loss(mode, p, t, eps=1e-7):
    g = parts(p, t)
    iou = g['inter'] / (g['union'] + eps)
    if mode == 'giou':
        area = g['cw'] * g['ch']
        return 1 - (iou - (area - g['union']) / (area + eps))
    loss = 1 - iou + g['rho2'] / (g['c2'] + eps)
    if mode == 'ciou':
        v = 4 / math.pi ** 2 * (torch.atan(g['wg'] / g['hg']) - torch.atan(g['w'] / g['h'])) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        loss = loss + alpha * v
    return loss


@pytest.mark.parametrize('mode', ['giou', 'diou', 'ciou'])
def test_matches_torchvision(mode, iou_path):
    pred, target = random_pairs(30, seed=3, dtype=torch.float32)
    pred_ref = pred.clone().requires_grad_(True)
    pred.requires_grad_(True)
    fn = LOSSES[mode][1]
    got = fn(pred, target, reduction='none', **({'iou_gate': None} if mode == 'ciou' else {}))
    expected = torchvision_loss(mode, pred_ref, target)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(pred.grad, pred_ref.grad)


# ------------------------------------------------------------- hand-derived geometry
E25 = math.exp(0.25)
# unit boxes sharing a corner: IoU 0, union 2, enclosing 2x2, rho^2 = 2, c^2 = 8, dx = dy = 1
CORNER_CASES = [
    ('iou', dict(mode='linear'), 1 - 1e-6),  # IoU clamped at eps (mmdet)
    ('iou', dict(mode='log'), -math.log(1e-6)),  # IoU clamped at eps (mmdet)
    ('giou', {}, 1.5),
    ('diou', {}, 1.25),
    ('ciou', {}, 1.25),  # same aspect ratio: v = 0
    ('eiou', {}, 1.25),  # same size: no width/height terms
    ('siou', {}, 1 + (1 - math.exp(-0.25))),  # angle 45 deg: gamma = 1, rho_x = rho_y = 1/4
    ('wiou', dict(version='v1'), E25),
    ('alpha_iou', dict(base='diou', alpha=3.0), 1 + 0.25 ** 3),
    ('mpdiou', dict(img_size=2), 1.5),  # d1^2 = d2^2 = 2 over 2^2 + 2^2
    ('inner_iou', dict(ratio=0.5), 1.0),
    ('inner_iou', dict(ratio=2.0), 1 - 1 / 7),  # 2x2 boxes overlapping in a unit square
    ('focaler_iou', {}, 1.0),
    ('shape_iou', {}, 1.25),
    ('nwd', dict(constant=2.0), 1 - math.exp(-math.sqrt(2) / 2)),
]


@pytest.mark.parametrize('name, params, expected', CORNER_CASES,
                         ids=[f'{n}-{p}' for n, p, _ in CORNER_CASES])
def test_unit_boxes_sharing_a_corner(name, params, expected, iou_path):
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0, 2.0, 2.0]], dtype=torch.float64)
    got = LOSSES[name][1](pred, target, **params)
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('name', NAMES)
def test_identical_boxes_give_zero(name):
    boxes = torch.tensor([[1.0, 2.0, 5.0, 4.0], [10.0, 10.0, 30.0, 50.0]], dtype=torch.float64)
    for params in all_params(name):
        got = LOSSES[name][1](boxes, boxes.clone(), reduction='none', **params)
        torch.testing.assert_close(got, torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_siou_far_from_axis_and_shape():
    # centres offset (3, 1) inside a 6x4 enclosing box: sin 2a = 2*3*1/10 = 0.6
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[2.0, 0.0, 6.0, 4.0]], dtype=torch.float64)
    gamma = 2 - 0.6
    distance = 2 - math.exp(-gamma * (3 / 6) ** 2) - math.exp(-gamma * (1 / 4) ** 2)
    shape = 2 * (1 - math.exp(-0.5)) ** 4  # omega = |2 - 4| / 4 for both
    expected = 1 - 0 + (distance + shape) / 2  # the boxes only touch: IoU 0
    assert F.siou_loss(pred, target).item() == pytest.approx(expected, rel=1e-9)


def test_eiou_is_efficient_iou_not_mmdets_extended_iou():
    # same centre, 2x2 inside 2x4: IoU 1/2, rho = 0, dw = 0, dh^2 / C_h^2 = 4/16
    pred = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
    assert F.eiou_loss(pred, target).item() == pytest.approx(0.75, rel=1e-6)
    # Focal-EIoU: times IoU^gamma
    assert F.eiou_loss(pred, target, gamma=1.0).item() == pytest.approx(0.375, rel=1e-6)


def test_focaler_maps_iou_range():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]] * 3)
    target = torch.tensor([[0.0, 0.0, 2.0, 8.0], [0.0, 0.0, 2.0, 4.0], [0.0, 0.0, 2.0, 2.2]])
    # IoU 1/4, 1/2, 1/1.1; [d, u] = [0.3, 0.8]: focaler IoU 0, 0.4, 1
    got = F.focaler_iou_loss(pred, target, reduction='none', d=0.3, u=0.8)
    torch.testing.assert_close(got, torch.tensor([1.0, 0.6, 0.0]), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------- gradcheck
GRAD_PRED = torch.tensor([[0.5, 0.3, 4.6, 3.4], [1.6, 1.2, 5.5, 6.1], [10.9, 9.3, 13.8, 14.2]])
GRAD_TARGET = torch.tensor([[0.0, 0.0, 4.0, 3.0], [1.0, 2.0, 6.0, 7.0], [10.0, 10.0, 13.0, 15.0]])
# pred strictly inside target: the enclosing box (WIoU's detached denominator) is the target
NESTED_PRED = torch.tensor([[0.5, 0.3, 3.6, 2.4], [1.6, 2.2, 5.5, 6.1], [10.4, 10.3, 12.8, 14.2]])
# Every variant whose loss is a true function of pred (no detached factor of pred).
GRADCHECK_CASES = [
    ('iou', dict(mode='linear')), ('iou', dict(mode='square')), ('iou', dict(mode='log')),
    ('giou', {}), ('diou', {}), ('ciou', dict(iou_gate=0.99)), ('eiou', {}), ('siou', {}),
    ('wiou', dict(version='v1')), ('alpha_iou', dict(base='iou')),
    ('alpha_iou', dict(base='giou')), ('alpha_iou', dict(base='diou', alpha=0.5)),
    ('mpdiou', dict(img_size=(20, 16))), ('inner_iou', dict(base='giou', ratio=0.8)),
    ('inner_iou', dict(base='siou', ratio=1.3)), ('focaler_iou', dict(base='eiou', d=0.1)),
    ('shape_iou', dict(scale=0.5)), ('nwd', dict(constant=4.0)),
]


@pytest.mark.parametrize('name, params', GRADCHECK_CASES, ids=[f'{n}-{p}' for n, p in
                                                                GRADCHECK_CASES])
def test_gradcheck(name, params):
    fn = LOSSES[name][1]
    pred = double_leaf(NESTED_PRED if name == 'wiou' else GRAD_PRED)
    target = GRAD_TARGET.double()
    assert torch.autograd.gradcheck(lambda p: fn(p, target, reduction='none', **params),
                                    (pred,))


def test_gradcheck_target_side():
    # the target is differentiable too (a learned target, e.g. distillation)
    pred, target = GRAD_PRED.double(), double_leaf(GRAD_TARGET)
    for fn in (F.giou_loss, F.diou_loss, F.siou_loss, F.nwd_loss):
        assert torch.autograd.gradcheck(lambda t: fn(pred, t, reduction='none'), (target,))


# --------------------------------------------------------- adversarial corpus, 3 dtypes
def corpus():
    pairs = [
        ([1, 2, 5, 7], [1, 2, 5, 7]),  # identical
        ([2, 2, 2, 2], [0, 0, 4, 4]),  # zero-area pred (a point) inside the target
        ([0, 0, 4, 4], [3, 3, 3, 3]),  # zero-area target
        ([1, 1, 1, 1], [1, 1, 1, 1]),  # both the same point
        ([1, 1, 1, 1], [5, 5, 5, 5]),  # both points, apart
        ([0, 0, 0, 4], [0, 0, 0, 4]),  # identical zero-width lines
        ([0, 0, 4, 0], [1, 0, 3, 0]),  # zero-height lines, nested
        ([4, 4, 0, 0], [0, 0, 4, 4]),  # inverted pred (x2 < x1 and y2 < y1)
        ([4, 0, 0, 4], [1, 1, 3, 3]),  # inverted in x only
        ([3, 3, 1, 1], [2, 2, 2, 2]),  # inverted pred, zero-area target
        ([2, 2, 0, 0], [0, 0, 0, 0]),  # inverted pred whose centre is off the enclosing box
        ([10, 0, 0, 1], [0, 0, 1, 1]),  # inverted in x, wider than the enclosing box
        ([0, 0, 10, 10], [2, 3, 5, 6]),  # target inside pred
        ([2, 3, 5, 6], [0, 0, 10, 10]),  # pred inside target
        ([0, 4, 10, 6], [4, 0, 6, 10]),  # same centre, crossed
        ([0, 0, 1, 1], [1, 1, 2, 2]),  # sharing a corner
        ([0, 0, 1, 1], [1000, 1000, 1001, 1001]),  # far apart
        ([1e4, 2e4, 5e4, 6e4], [1.1e4, 2e4, 6e4, 5.9e4]),  # huge
        ([0, 0, 10, 10], [5e4, 5e4, 6e4, 6e4]),  # huge and far
        ([1e4, 1e4, 6e4, 6e4], [1e4, 1e4, 6e4, 6e4]),  # huge and identical
        ([1, 1, 1.001, 1.001], [1.0005, 1.0005, 1.0015, 1.0015]),  # tiny
        ([0, 0, 1e-3, 1e-3], [5e-4, 0, 1.5e-3, 1e-3]),  # tiny at the origin
        ([0, 0, 1e-3, 1e-3], [0, 0, 1e-3, 1e-3]),  # tiny and identical
        ([0, 0, 1e-3, 2e-3], [5e4, 5e4, 6e4, 6e4]),  # tiny against huge
    ]
    pred, target = zip(*pairs)
    return torch.tensor(pred, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', NAMES)
def test_adversarial_corpus_is_finite(name, dtype, iou_path):
    cls, _, _ = LOSSES[name]
    base_pred, base_target = corpus()
    for params in all_params(name):
        module = cls(reduction='none', **params)  # WIoU in training mode: the running mean
        pred = base_pred.to(dtype).requires_grad_(True)
        target = base_target.to(dtype).requires_grad_(True)
        loss = module(pred, target)
        assert loss.dtype == dtype and loss.shape == (len(base_pred),)
        assert_finite(loss)
        loss.sum().backward()
        assert_finite(pred.grad, target.grad)
        if name == 'wiou':
            assert_finite(module.running_mean)


# ------------------------------------------------- empty input, shapes, formats, weights
@pytest.mark.parametrize('name', NAMES)
def test_empty_input_gives_zero_in_graph(name):
    cls, _, _ = LOSSES[name]
    for params in all_params(name):
        for kwargs in (dict(), dict(avg_factor=0), dict(reduction_override='sum')):
            pred = torch.zeros(0, 4, requires_grad=True)
            assert_zero_in_graph(cls(**params)(pred, torch.zeros(0, 4), **kwargs), pred)
        # an all-zero weight gives a zero in the graph too
        pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
        target = torch.tensor([[1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 7.0]])
        assert_zero_in_graph(cls(**params)(pred, target, weight=torch.zeros(2, 4)), pred)


@pytest.mark.parametrize('name', NAMES)
def test_batch_shapes(name):
    fn, params = LOSSES[name][1], LOSSES[name][2]
    pred, target = random_pairs(12, seed=5)
    flat = fn(pred, target, reduction='none', **params)
    batched = fn(pred.view(2, 3, 2, 4), target.view(2, 3, 2, 4), reduction='none', **params)
    assert batched.shape == (2, 3, 2)
    torch.testing.assert_close(batched.reshape(-1), flat)
    single = fn(pred[0], target[0], reduction='none', **params)
    assert single.shape == ()
    if name != 'wiou':  # WIoU v3's batch mean depends on the batch
        torch.testing.assert_close(single, flat[0])


@pytest.mark.parametrize('fmt', ['xywh', 'cxcywh'])
@pytest.mark.parametrize('name', NAMES)
def test_box_formats_equivalent(name, fmt):
    fn, params = LOSSES[name][1], LOSSES[name][2]
    pred, target = random_pairs(8, seed=6)
    pred_xyxy = pred.clone().requires_grad_(True)
    pred_fmt = box_convert(pred, 'xyxy', fmt).requires_grad_(True)
    expected = fn(pred_xyxy, target, reduction='none', **params)
    got = fn(pred_fmt, box_convert(target, 'xyxy', fmt), reduction='none', box_format=fmt,
             **params)
    torch.testing.assert_close(got, expected)
    # the gradient is the xyxy gradient through the conversion
    got.sum().backward()
    expected.sum().backward()
    leaf = pred_fmt.detach().requires_grad_(True)
    (converted,) = torch.autograd.grad(box_convert(leaf, fmt, 'xyxy'), leaf, pred_xyxy.grad)
    torch.testing.assert_close(pred_fmt.grad, converted)


@pytest.mark.parametrize('name', NAMES)
def test_weights_and_avg_factor(name):
    cls, fn, params = LOSSES[name]
    pred, target = random_pairs(6, seed=7)
    element = fn(pred, target, reduction='none', **params)
    weight = torch.rand(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    module = cls(loss_weight=2.0, **params)
    module.eval()  # WIoU: use (and keep) the running mean
    got = module(pred, target, weight=weight, avg_factor=3.0)
    expected = 2.0 * (cls(reduction='none', **params).eval()(pred, target)
                      * weight.mean(-1)).sum() / (3.0 + torch.finfo(torch.float32).eps)
    torch.testing.assert_close(got, expected)
    if name != 'wiou':
        torch.testing.assert_close(fn(pred, target, weight=weight, reduction='sum', **params),
                                   (element * weight.mean(-1)).sum())
    # per-box weight (N,) and batched (B, N, 4) weight
    torch.testing.assert_close(
        fn(pred.view(2, 3, 4), target.view(2, 3, 4), weight=weight.view(2, 3, 4),
           reduction='none', **params),
        fn(pred.view(2, 3, 4), target.view(2, 3, 4), weight=weight.mean(-1).view(2, 3),
           reduction='none', **params))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', NAMES)
def test_half_precision_computed_in_float32(name, dtype):
    fn, params = LOSSES[name][1], LOSSES[name][2]
    pred, target = random_pairs(10, seed=8)
    pred, target = pred.to(dtype), target.to(dtype)  # representable: compare like for like
    got = fn(pred, target, reduction='none', **params)
    assert got.dtype == dtype
    expected = fn(pred.float(), target.float(), reduction='none', **params).to(dtype)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize('name', NAMES)
def test_bad_shapes_and_format(name):
    fn, params = LOSSES[name][1], LOSSES[name][2]
    boxes = torch.rand(3, 4)
    with pytest.raises(ValueError, match=r'target must have the shape of pred \(3, 4\), '
                                         r'got \(2, 4\)'):
        fn(boxes, boxes[:2], **params)
    with pytest.raises(ValueError, match=r'pred must have shape \(\.\.\., 4\), got \(3, 5\)'):
        fn(torch.rand(3, 5), torch.rand(3, 5), **params)
    with pytest.raises(ValueError, match=r"box_format must be one of \('xyxy', 'xywh', "
                                         r"'cxcywh'\), got 'yxyx'"):
        fn(boxes, boxes, box_format='yxyx', **params)
    with pytest.raises(ValueError, match='box_format'):
        LOSSES[name][0](box_format='xyzw', **params)
    with pytest.raises(ValueError, match=r'weight must .* got \(5,\)'):
        fn(boxes, boxes, weight=torch.ones(5), **params)
    with pytest.raises(TypeError, match='pred must be a floating-point tensor'):
        fn(boxes.long(), boxes, **params)


@pytest.mark.parametrize('build, match', [
    (lambda: mmdet_losses.IoULoss(mode='cubic'), r"mode must be one of .*got 'cubic'"),
    (lambda: mmdet_losses.CIoULoss(iou_gate=1.5), r'iou_gate must be in \[0.0, 1.0\], got 1.5'),
    (lambda: mmdet_losses.GIoULoss(eps=0.0), 'eps must be in'),
    (lambda: mmdet_losses.EIoULoss(gamma=-1.0), 'gamma must be in'),
    (lambda: mmdet_losses.SIoULoss(theta=0.5), 'theta must be in'),
    (lambda: mmdet_losses.WIoULoss(version='v4'), r"version must be one of .*got 'v4'"),
    (lambda: mmdet_losses.WIoULoss(momentum=2.0), 'momentum must be in'),
    (lambda: mmdet_losses.AlphaIoULoss(base='siou'), r"base must be one of .*got 'siou'"),
    (lambda: mmdet_losses.AlphaIoULoss(alpha=0.0), 'alpha must be in'),
    (lambda: mmdet_losses.MPDIoULoss(img_size=(0, 10)), r'img_size\[0\] \(width\) must be'),
    (lambda: mmdet_losses.MPDIoULoss(img_size=(1, 2, 3)), 'img_size must be'),
    (lambda: mmdet_losses.InnerIoULoss(base='wiou'), r"base must be one of .*got 'wiou'"),
    (lambda: mmdet_losses.InnerIoULoss(ratio=0.0), 'ratio must be in'),
    (lambda: mmdet_losses.FocalerIoULoss(d=0.6, u=0.5), 'd must be less than u'),
    (lambda: mmdet_losses.FocalerIoULoss(base='nwd'), r"base must be one of .*got 'nwd'"),
    (lambda: mmdet_losses.ShapeIoULoss(scale=-1.0), 'scale must be in'),
    (lambda: mmdet_losses.NWDLoss(constant=0.0), 'constant must be in'),
    (lambda: F.mpdiou_loss(torch.rand(2, 4), torch.rand(2, 4)), 'img_size must be given'),
    (lambda: F.iou_loss(torch.rand(2, 4), torch.rand(2, 4), mode='cubic'), 'mode'),
    (lambda: F.wiou_loss(torch.rand(2, 4), torch.rand(2, 4), version='v0'), 'version'),
])
def test_bad_parameters(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ------------------------------------------------------------- registry and the kernel
def test_built_by_name_from_a_config():
    pred, target = random_pairs(5, seed=9, dtype=torch.float32)
    for name, (cls, fn, params) in LOSSES.items():
        module = mmdet_losses.MODELS.build(dict(type=f'mmdet_losses.{cls.__name__}',
                                                loss_weight=2.0, **params))
        assert type(module) is cls
        if name == 'wiou':  # the module's running mean starts at 1
            params = dict(params, running_mean=torch.ones(()))
        torch.testing.assert_close(module.eval()(pred, target),
                                   2.0 * fn(pred, target, **params), msg=name)
    # mmdet's arguments keep working
    module = mmdet_losses.MODELS.build(dict(type='mmdet_losses.GIoULoss', eps=1e-6,
                                            reduction='mean', loss_weight=2.0))
    torch.testing.assert_close(module(pred, target), 2 * F.giou_loss(pred, target, eps=1e-6))
    with pytest.warns(DeprecationWarning, match="mode='linear'"):
        linear = mmdet_losses.IoULoss(linear=True)
    assert linear.mode == 'linear'


def test_mpdiou_image_size_overridable_per_call():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
    loss = mmdet_losses.MPDIoULoss(img_size=(4, 2))
    assert loss(pred, target).item() == pytest.approx(1 - 1 / 3 + 2 / 20, rel=1e-6)
    assert loss(pred, target, img_size=10).item() == pytest.approx(1 - 1 / 3 + 2 / 200,
                                                                   rel=1e-6)


@pytest.mark.parametrize('mode, iou_gate', [('iou', None), ('giou', None), ('diou', None),
                                            ('ciou', 0.5), ('ciou', None)])
def test_public_path_equals_plain_reference(mode, iou_gate):
    """Whatever path runs (the fused kernel where built), it equals the plain reference on
    the adversarial corpus: values and gradients."""
    pred, target = corpus()
    pred, target = pred.float(), target.float()
    eps = 1e-6
    plain_pred = pred.clone().requires_grad_(True)
    fused_pred = pred.clone().requires_grad_(True)
    expected = iou_module._plain_iou_family_loss(plain_pred, target, mode, eps, iou_gate)
    got = iou_module._fused_family(mode, fused_pred, target, None, 'none', None, 'xyxy', eps,
                                   iou_gate)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    expected.sum().backward()
    got.sum().backward()
    torch.testing.assert_close(fused_pred.grad, plain_pred.grad, rtol=1e-4, atol=1e-6)


def test_half_pred_with_float32_target_keeps_the_target_exact():
    # AMP: pred from the head in float16, target from the assigner in float32
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0009765625 + 2 ** -12]])  # not a float16
    got = F.giou_loss(pred.half(), target, reduction='none')
    assert got.dtype == torch.float16
    expected = F.giou_loss(pred, target, reduction='none')
    assert expected.item() > 0 and got.item() == pytest.approx(expected.item(), rel=1e-3)
