"""Draw the losses of mmdet_losses and their gradients, one PNG per figure.

Every curve is the output of one of the package's registered loss classes (built by its
contract name, called with ``reduction_override='none'``), and every gradient is
``torch.autograd`` through it: nothing here re-derives a formula.

    python tools/plot_losses.py                      # every figure, into docs/figures/
    python tools/plot_losses.py --families iou --points 41 --out /tmp/figs
    python tools/plot_losses.py --list

A figure whose losses are not in the package yet is skipped with a message, and the exit
status is then 1.
"""
import argparse
import contextlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')  # headless: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402  (a dependency of matplotlib)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import mmdet_losses  # noqa: E402

DEFAULT_OUT = REPO / 'docs' / 'figures'
DEFAULT_POINTS = 401
DPI = 100


class MissingLoss(LookupError):
    """A figure asks for a loss class the package does not export (yet)."""


@dataclass(frozen=True)
class Curve:
    """One line of a figure: the loss class ``loss`` built with ``params``."""
    label: str
    loss: str
    params: Dict[str, object] = field(default_factory=dict)
    style: Dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """A curve's values: the loss and its derivative along the swept variable (None where
    the loss has no gradient, e.g. the 0-1 loss)."""
    x: np.ndarray
    loss: np.ndarray
    grad: Optional[np.ndarray]


# Turns the swept values (a float64 leaf of shape (P,)) into (pred, target).
MakeInputs = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: the tensors here are tiny, and on a busy machine a thread pool
    makes each call some 50 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_loss(curve: Curve) -> torch.nn.Module:
    """The package's loss module named ``curve.loss``, as a config would build it."""
    if not hasattr(mmdet_losses, curve.loss):
        raise MissingLoss(f'mmdet_losses has no {curve.loss} (yet)')
    return mmdet_losses.MODELS.build(dict(type=f'mmdet_losses.{curve.loss}', **curve.params))


def sweep(curve: Curve, x: np.ndarray, make_inputs: MakeInputs) -> Series:
    """Evaluate ``curve``'s loss at every swept value and its derivative by autograd.

    Each swept value is its own sample and the loss is taken element-wise
    (``reduction_override='none'``), so the gradient of the sum is the per-sample derivative.
    Trailing loss dimensions (classes, box coordinates) are summed per sample.
    """
    with one_thread():
        leaf = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        pred, target = make_inputs(leaf)
        loss = build_loss(curve)(pred, target, reduction_override='none')
        loss = loss.reshape(len(x), -1).sum(dim=1)
        grad = None
        if loss.requires_grad:
            (grad_t,) = torch.autograd.grad(loss.sum(), leaf, allow_unused=True)
            grad = None if grad_t is None else grad_t.detach().numpy()
    return Series(x=np.asarray(x), loss=loss.detach().numpy(), grad=grad)


def sweep_all(curves: Sequence[Curve], x: np.ndarray,
              make_inputs: MakeInputs) -> Dict[str, Series]:
    return {curve.label: sweep(curve, x, make_inputs) for curve in curves}


# Turns one swept value (a float64 scalar leaf) into a small batch (pred, target), for losses
# whose samples interact (mined triplets, all pairs of a batch).
MakeBatch = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


def sweep_batches(curve: Curve, x: np.ndarray, make_batch: MakeBatch,
                  term: int = 0) -> Series:
    """Like :func:`sweep`, but one batch per swept value, of which the element-wise loss
    ``term`` (an anchor, a pair) is drawn, with its derivative along the swept value."""
    loss_fn = build_loss(curve)
    values, grads = [], []
    with one_thread():
        for value in x:
            leaf = torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
            loss = loss_fn(*make_batch(leaf), reduction_override='none').reshape(-1)[term]
            (grad,) = torch.autograd.grad(loss, leaf)
            values.append(loss.item())
            grads.append(grad.item())
    return Series(x=np.asarray(x), loss=np.array(values), grad=np.array(grads))


# ------------------------------------------------------------------------------------------
# Inputs of each sweep
# ------------------------------------------------------------------------------------------

def residual_inputs(residual: torch.Tensor):
    """pred = residual, target = 0."""
    return residual, torch.zeros_like(residual)


def positive_logit_inputs(logit: torch.Tensor):
    """One sigmoid class (C=1) and every sample labelled with it (index 0; 1 would be the
    background), so the probability of the ground-truth class is p_t = sigmoid(logit)."""
    return logit.unsqueeze(1), torch.zeros(len(logit), dtype=torch.long)


def margin_inputs(margin: torch.Tensor):
    """Score f = margin, label y = +1, so y f = margin."""
    return margin, torch.ones_like(margin)


TARGET_BOX = (0.0, 0.0, 2.0, 2.0)  # xyxy, w = h = 2
PRED_SIZE = (2.0, 1.5)  # the shifted box: other height, so that CIoU's aspect term shows


def shifted_box_inputs(shift: torch.Tensor):
    """A (2 x 1.5) box centred at (1 + shift, 1) against the (2 x 2) target at (1, 1): it
    slides along x through the target; no overlap for |shift| >= 2."""
    w, h = PRED_SIZE
    cx, cy = 1.0 + shift, torch.full_like(shift, 1.0)
    pred = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    target = torch.tensor(TARGET_BOX, dtype=shift.dtype).expand(len(shift), 4)
    return pred, target


def aspect_box_inputs(log2_ratio: torch.Tensor):
    """A box with the target's centre and area whose aspect ratio w/h is 2**log2_ratio."""
    area = (TARGET_BOX[2] - TARGET_BOX[0]) * (TARGET_BOX[3] - TARGET_BOX[1])
    ratio = torch.exp2(log2_ratio)
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    cx = torch.full_like(w, (TARGET_BOX[0] + TARGET_BOX[2]) / 2)
    cy = torch.full_like(w, (TARGET_BOX[1] + TARGET_BOX[3]) / 2)
    pred = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    target = torch.tensor(TARGET_BOX, dtype=w.dtype).expand(len(w), 4)
    return pred, target


def pair_batch(similar: bool) -> MakeBatch:
    """Two 1-D embeddings at distance d, with the same label or not: one pair."""
    def make(distance: torch.Tensor):
        pred = torch.stack([torch.zeros_like(distance), distance]).unsqueeze(1)
        return pred, torch.tensor([0, 0 if similar else 1])
    return make


def triplet_batch(gap: torch.Tensor):
    """Anchor 0 at 0, its positive at 1 and a negative at gap - 1 (1-D embeddings), so that
    d(a, p) - d(a, n) = gap for gap <= 1; the anchor's term is entry 0."""
    pred = torch.stack([torch.zeros_like(gap), torch.ones_like(gap), gap - 1]).unsqueeze(1)
    return pred, torch.tensor([0, 0, 1])


# ------------------------------------------------------------------------------------------
# The curves of each figure (contract class names, see DESIGN.md)
# ------------------------------------------------------------------------------------------

REGRESSION = [
    Curve('L1', 'L1Loss', style=dict(color='C0', lw=2.2)),
    Curve('L2 (MSE)', 'MSELoss', style=dict(color='C1')),
    Curve('RMSE (one element)', 'RMSELoss', style=dict(color='k', ls=':', lw=1.6)),
    Curve('Smooth L1, β=0.5', 'SmoothL1Loss', dict(beta=0.5), dict(color='C2', ls='--')),
    Curve('Smooth L1, β=1', 'SmoothL1Loss', dict(beta=1.0), dict(color='C2')),
    Curve('Smooth L1, β=2', 'SmoothL1Loss', dict(beta=2.0), dict(color='C2', ls='-.')),
    Curve('Balanced L1 (α=0.5, γ=1.5, β=1)', 'BalancedL1Loss', style=dict(color='C3')),
]

FOCAL_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
FOCAL = [
    Curve('CE (γ=0)' if gamma == 0 else f'FL γ={gamma:g}', 'FocalLoss',
          dict(gamma=gamma, alpha=-1.0), dict(color=f'C{i}'))
    for i, gamma in enumerate(FOCAL_GAMMAS)
]

MARGIN = [
    Curve('0-1', 'ZeroOneLoss', style=dict(color='k', lw=2.2)),
    Curve('logistic', 'LogisticLoss', style=dict(color='C0')),
    Curve('hinge', 'HingeLoss', style=dict(color='C1')),
    Curve('squared hinge', 'HingeLoss', dict(squared=True), dict(color='C1', ls='--')),
    Curve('exponential', 'ExponentialLoss', style=dict(color='C2')),
]

IOU_CORE = [
    Curve('IoU (1 - IoU)', 'IoULoss', dict(mode='linear'), dict(color='k', lw=2.4)),
    Curve('GIoU', 'GIoULoss', style=dict(color='C0')),
    Curve('DIoU', 'DIoULoss', style=dict(color='C1', ls='--')),
    Curve('CIoU (iou_gate=0.5)', 'CIoULoss', style=dict(color='C2')),
    Curve('CIoU (iou_gate=None)', 'CIoULoss', dict(iou_gate=None),
          dict(color='C2', ls=':', lw=2)),
]

IOU_VARIANTS = [
    Curve('IoU (1 - IoU)', 'IoULoss', dict(mode='linear'), dict(color='k', lw=2.4)),
    Curve('EIoU', 'EIoULoss', style=dict(color='C0')),
    Curve('SIoU', 'SIoULoss', style=dict(color='C1')),
    Curve('WIoU v1', 'WIoULoss', dict(version='v1'), dict(color='C2')),
    Curve('Alpha-IoU (α=3, iou)', 'AlphaIoULoss', style=dict(color='C3')),
    Curve('MPDIoU (img 8x8)', 'MPDIoULoss', dict(img_size=(8, 8)), dict(color='C4')),
    Curve('Inner-IoU', 'InnerIoULoss', style=dict(color='C5')),
    Curve('Focaler-IoU', 'FocalerIoULoss', style=dict(color='C6')),
    Curve('Shape-IoU', 'ShapeIoULoss', style=dict(color='C7')),
    Curve('NWD (C=12.8)', 'NWDLoss', style=dict(color='C9', ls='--')),
]

CONTRASTIVE = [
    Curve('similar pair (y=1)', 'ContrastiveLoss', style=dict(color='C0')),
    Curve('dissimilar pair (y=0), margin 1', 'ContrastiveLoss', style=dict(color='C3')),
]

TRIPLET = [
    Curve('margin 0.3 (default)', 'TripletLoss', dict(margin=0.3), dict(color='C0')),
    Curve('margin 1', 'TripletLoss', dict(margin=1.0), dict(color='C1')),
    Curve('soft margin, log(1 + exp(gap + 0.3))', 'TripletLoss',
          dict(margin=0.3, soft_margin=True), dict(color='C2', ls='--')),
]


# ------------------------------------------------------------------------------------------
# Drawing
# ------------------------------------------------------------------------------------------

def _plot(ax_loss, ax_grad, curves: Sequence[Curve], data: Dict[str, Series],
          x_of=lambda s: s.x) -> None:
    for curve in curves:
        series = data[curve.label]
        ax_loss.plot(x_of(series), series.loss, label=curve.label, **curve.style)
        if series.grad is not None and ax_grad is not None:
            ax_grad.plot(x_of(series), series.grad, label=curve.label, **curve.style)
    for ax in (ax_loss, ax_grad):
        if ax is not None:
            ax.grid(True, alpha=0.3)


def _figure(ncols: int, nrows: int = 1, height: float = 4.0):
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, height * nrows), dpi=DPI,
                             squeeze=False)
    return fig, axes


def regression_data(points: int) -> Dict[str, Series]:
    return sweep_all(REGRESSION, np.linspace(-3.0, 3.0, points), residual_inputs)


def draw_regression(points: int):
    data = regression_data(points)
    fig, ((ax_loss, ax_grad),) = _figure(2)
    _plot(ax_loss, ax_grad, REGRESSION, data)
    ax_loss.set(title='Regression losses', xlabel='residual d = pred - target', ylabel='loss',
                ylim=(0, 4.5))
    ax_grad.set(title='Their gradients (autograd)', xlabel='residual d = pred - target',
                ylabel='d loss / d pred', ylim=(-3.2, 3.2))
    ax_loss.legend(fontsize=8, loc='upper center')
    return fig


def focal_data(points: int) -> Dict[str, Series]:
    """Swept in the logit z (the gradient is d loss / d z), reported against
    p_t = sigmoid(z) on an even grid of p_t away from 0 and 1, where z is infinite."""
    p_t = np.linspace(1e-3, 1 - 1e-3, points)
    data = sweep_all(FOCAL, np.log(p_t) - np.log1p(-p_t), positive_logit_inputs)
    return {label: Series(p_t, s.loss, s.grad) for label, s in data.items()}


def draw_focal(points: int):
    data = focal_data(points)
    fig, ((ax_loss, ax_grad),) = _figure(2)
    _plot(ax_loss, ax_grad, FOCAL, data)
    ax_loss.set(title='Focal loss -(1-p_t)^γ log p_t (α off)', xlabel='probability of the '
                'ground-truth class p_t', ylabel='loss', xlim=(0, 1), ylim=(0, 5))
    ax_loss.axvspan(0.6, 1.0, color='C2', alpha=0.08)
    ax_loss.text(0.8, 3.0, 'well-classified\nexamples', ha='center', fontsize=9)
    ax_grad.set(title='Gradient with respect to the logit z (p_t = sigmoid(z))', xlabel='p_t',
                ylabel='d loss / d z', xlim=(0, 1))
    ax_loss.legend(fontsize=9)
    return fig


def margin_data(points: int) -> Dict[str, Series]:
    return sweep_all(MARGIN, np.linspace(-2.0, 2.5, points), margin_inputs)


def draw_margin(points: int):
    data = margin_data(points)
    fig, ((ax_loss, ax_grad),) = _figure(2)
    _plot(ax_loss, ax_grad, MARGIN, data)
    ax_loss.set(title='Margin losses (y in {-1, +1})', xlabel='margin y f', ylabel='loss',
                ylim=(0, 4))
    ax_grad.set(title='Gradients (the 0-1 loss has none)', xlabel='margin y f',
                ylabel='d loss / d f', ylim=(-4.2, 0.5))
    ax_loss.legend(fontsize=9)
    return fig


def iou_shift_data(curves: Sequence[Curve], points: int) -> Dict[str, Series]:
    return sweep_all(curves, np.linspace(-4.0, 4.0, points), shifted_box_inputs)


def iou_aspect_data(curves: Sequence[Curve], points: int) -> Dict[str, Series]:
    return sweep_all(curves, np.linspace(-3.0, 3.0, points), aspect_box_inputs)


def _draw_iou(curves: Sequence[Curve], points: int, title: str):
    shift, aspect = iou_shift_data(curves, points), iou_aspect_data(curves, points)
    fig, ((ax_sl, ax_al), (ax_sg, ax_ag)) = _figure(2, 2, height=3.4)
    _plot(ax_sl, ax_sg, curves, shift)
    _plot(ax_al, ax_ag, curves, aspect)
    gap = (PRED_SIZE[0] + TARGET_BOX[2] - TARGET_BOX[0]) / 2
    for ax in (ax_sl, ax_sg):
        ax.axvspan(-4.0, -gap, color='0.5', alpha=0.12, lw=0)
        ax.axvspan(gap, 4.0, color='0.5', alpha=0.12, lw=0)
        for x in (-gap - 1.0, gap + 1.0):
            ax.text(x, 0.97, 'no overlap', ha='center', va='top', fontsize=8,
                    transform=ax.get_xaxis_transform())
    ax_sl.set(title='2x1.5 box sliding along x past a 2x2 target', ylabel='loss')
    ax_sg.set(xlabel='x offset of the predicted centre', ylabel='d loss / d offset')
    ax_al.set(title='Same centre and area as the target, aspect ratio varies')
    ax_ag.set(xlabel='aspect ratio w/h of the prediction (the target is square)',
              ylabel='d loss / d log2(w/h)')
    ticks = np.arange(-3, 4)
    labels = [f'1/{2 ** -t}' if t < 0 else f'{2 ** t}' for t in ticks]
    for ax in (ax_al, ax_ag):
        ax.set_xticks(ticks, labels)
    handles, labels = ax_sl.get_legend_handles_labels()
    ncol = min(len(handles), 5)
    rows = -(-len(handles) // ncol)
    fig.legend(handles, labels, loc='lower center', ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.01, 1, 1))
    return fig


def draw_iou_core(points: int):
    return _draw_iou(IOU_CORE, points, 'IoU loss has no gradient without overlap; GIoU, DIoU '
                     'and CIoU still pull the box in')


def draw_iou_variants(points: int):
    return _draw_iou(IOU_VARIANTS, points, 'The IoU variants (defaults unless shown)')


def metric_data(points: int) -> Tuple[Dict[str, Series], Dict[str, Series]]:
    """(contrastive against the distance, triplet against d(a, p) - d(a, n))."""
    # away from zero distance, where the direction (and so the gradient) is undefined: the
    # package gives 0 there, which would show as a spike
    distance = np.linspace(0.01, 2.0, points)
    contrastive = {c.label: sweep_batches(c, distance, pair_batch(c.label.startswith('similar')))
                   for c in CONTRASTIVE}
    gap = np.linspace(-1.5, 0.9, points)  # the negative stays off the anchor
    triplet = {c.label: sweep_batches(c, gap, triplet_batch) for c in TRIPLET}
    return contrastive, triplet


def draw_metric(points: int):
    contrastive, triplet = metric_data(points)
    fig, ((ax_cl, ax_tl), (ax_cg, ax_tg)) = _figure(2, 2, height=3.3)
    _plot(ax_cl, ax_cg, CONTRASTIVE, contrastive)
    _plot(ax_tl, ax_tg, TRIPLET, triplet)
    ax_cl.set(title='ContrastiveLoss: one pair at distance d', ylabel='loss')
    ax_cg.set(xlabel='distance d between the two embeddings', ylabel='d loss / d d')
    ax_tl.set(title='TripletLoss (batch hard): one anchor', ylabel='loss')
    ax_tg.set(xlabel='d(anchor, positive) - d(anchor, negative)', ylabel='d loss / d gap')
    ax_cl.legend(fontsize=9)
    ax_tl.legend(fontsize=9)
    return fig


@dataclass(frozen=True)
class FigureSpec:
    filename: str
    family: str
    draw: Callable[[int], 'plt.Figure']
    curves: Sequence[Curve]


FIGURES: Dict[str, FigureSpec] = {
    'regression': FigureSpec('regression.png', 'regression', draw_regression, REGRESSION),
    'focal': FigureSpec('focal_loss.png', 'classification', draw_focal, FOCAL),
    'margin': FigureSpec('margin_losses.png', 'classification', draw_margin, MARGIN),
    'iou_core': FigureSpec('iou_core.png', 'iou', draw_iou_core, IOU_CORE),
    'iou_variants': FigureSpec('iou_variants.png', 'iou', draw_iou_variants, IOU_VARIANTS),
    'metric': FigureSpec('metric_losses.png', 'metric', draw_metric, CONTRASTIVE + TRIPLET),
}


def missing_losses(spec: FigureSpec) -> List[str]:
    """The loss classes ``spec`` draws that the package does not export."""
    return sorted({c.loss for c in spec.curves if not hasattr(mmdet_losses, c.loss)})


def write_figure(spec: FigureSpec, out: Path, points: int) -> Path:
    """Draw ``spec`` and save it as ``out / spec.filename``; returns the path."""
    fig = spec.draw(points)
    try:
        if not fig.get_layout_engine():
            fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format='png', dpi=DPI)
    finally:
        plt.close(fig)
    # A 256-colour palette looks the same for line art and makes the file ~4x smaller.
    image = Image.open(buffer).convert('RGB').quantize(colors=256,
                                                       method=Image.Quantize.MEDIANCUT)
    path = out / spec.filename
    image.save(path, format='png', optimize=True)
    return path


def select(only: Optional[Sequence[str]], families: Optional[Sequence[str]]) -> List[str]:
    names = list(FIGURES)
    unknown = [n for n in (only or []) if n not in FIGURES]
    unknown += [f for f in (families or []) if f not in {s.family for s in FIGURES.values()}]
    if unknown:
        raise SystemExit(f'unknown figure or family: {", ".join(unknown)} (figures: '
                         f'{", ".join(FIGURES)}; families: '
                         f'{", ".join(sorted({s.family for s in FIGURES.values()}))})')
    if only:
        names = [n for n in names if n in only]
    if families:
        names = [n for n in names if FIGURES[n].family in families]
    return names


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT,
                        help='folder for the PNGs (default: docs/figures/)')
    parser.add_argument('--only', nargs='+', metavar='FIGURE', help='only these figures')
    parser.add_argument('--families', nargs='+', metavar='FAMILY',
                        help='only the figures of these families')
    parser.add_argument('--points', type=int, default=DEFAULT_POINTS,
                        help=f'samples per curve (default {DEFAULT_POINTS})')
    parser.add_argument('--list', action='store_true', help='list the figures and exit')
    args = parser.parse_args(argv)
    if args.points < 3:
        parser.error(f'--points must be at least 3, got {args.points}')

    names = select(args.only, args.families)
    if args.list:
        for name in names:
            spec = FIGURES[name]
            print(f'{name:14s} {spec.family:15s} {spec.filename}')
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in names:
        spec = FIGURES[name]
        missing = missing_losses(spec)
        if missing:
            print(f'skipped {spec.filename}: not in mmdet_losses yet: {", ".join(missing)}',
                  file=sys.stderr)
            status = 1
            continue
        path = write_figure(spec, args.out, args.points)
        print(f'wrote {path} ({path.stat().st_size // 1024} KB)')
    return status


if __name__ == '__main__':
    sys.exit(main())
