"""DIoU-NMS (Zheng et al. 2020), and its registration as an mmcv NMS type.

Greedy NMS that, going down the boxes by score, suppresses every remaining box ``j`` whose
DIoU-NMS score against a kept box ``i`` exceeds the threshold::

    IoU(i, j) - (rho^2 / c^2)^beta > iou_threshold

where ``rho`` is the distance between the centres and ``c`` the diagonal of the smallest
box enclosing both: two overlapping boxes with distant centres may be two objects, so they
are both kept where plain NMS would drop one. The geometry is :class:`mmdet_losses.boxes.BoxPair`
(``IoU = inter / max(union, eps)``, ``rho^2 / (c^2 + eps)`` bounded by 1).

On the CPU a compiled kernel (``mmdet_losses.ops._iou``, built at set-up) runs the greedy loop
without any N x N matrix, as the PyTorch operator ``torch.ops.mmdet_losses.diou_nms`` (its
output's length is data-dependent: ``torch.compile`` traces it without a graph break);
elsewhere, or where it is not built, the pure-PyTorch path below computes the same decisions,
one kept box against the remaining ones at a time.

Importing :mod:`mmdet_losses` makes ``'diou_nms'`` a type that mmcv's ``batched_nms`` (and so
every mmdet head's ``test_cfg``) resolves, without editing mmcv: mmcv looks the type name up in
the namespace of ``mmcv.ops.nms``, so the op, with mmcv's ``(dets, keep)`` return convention,
is added there, now if mmcv's module is already imported and otherwise right after it is::

    test_cfg = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, max_per_img=100,
                    nms=dict(type='diou_nms', iou_threshold=0.5))   # beta=... optional

Reference: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
Regression", AAAI 2020.
"""
import importlib.abc
import importlib.machinery
import sys
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..boxes import BoxPair, check_boxes
from ..validation import check_choice, check_loss_tensors, check_number, check_tensor
from ._ext import load_extension
from ._library import kernel_allowed, kernel_op

__all__ = ['diou_nms', 'batched_diou_nms']

_EXT = load_extension('iou')
#: Floor of the union and of the enclosing diagonal (only acts on degenerate boxes).
NMS_EPS = 1e-7
_MMCV_NMS_MODULE = 'mmcv.ops.nms'


# ------------------------------------------------------------------------------ checks
def _check_nms_args(boxes, scores, iou_threshold, beta) -> Tuple[float, float]:
    check_tensor('boxes', boxes, floating=True)
    check_boxes('boxes', boxes)
    if boxes.dim() != 2:
        raise ValueError(f'boxes must have shape (N, 4), got {tuple(boxes.shape)}')
    check_loss_tensors(boxes=boxes, scores=scores)  # real tensors, one device
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f'scores must have shape ({boxes.shape[0]},) (one per box), '
                         f'got {tuple(scores.shape)}')
    threshold = check_number('iou_threshold', iou_threshold)
    beta = check_number('beta', beta, low=0.0, low_open=True)
    return threshold, beta


# ----------------------------------------------------------------------------- the maths
def diou_nms_scores(box: Tensor, others: Tensor, beta: float, eps: float = NMS_EPS) -> Tensor:
    """The DIoU-NMS score ``IoU - min(rho^2 / (c^2 + eps), 1)^beta`` of one box (4,) against
    boxes (M, 4), in xyxy: (M,)."""
    pair = BoxPair(box, others)
    ratio = pair.distance_ratio(eps)
    return pair.iou_clamped(eps) - (ratio if beta == 1.0 else ratio.pow(beta))


def _candidates_by_score(boxes: Tensor, scores: Tensor) -> Tensor:
    """Indices of the boxes that take part, by descending score (ties: the lower index
    first): those whose four coordinates are finite and whose score is not NaN. Shared by the
    kernel and the plain path."""
    valid = torch.isfinite(boxes).all(dim=1)
    if scores.is_floating_point():
        valid &= ~torch.isnan(scores)
    candidates = torch.nonzero(valid).flatten()
    return candidates[torch.sort(scores[candidates], descending=True, stable=True).indices]


def _greedy_plain(boxes: Tensor, threshold: float, beta: float,
                  groups: Optional[Tensor] = None) -> List[int]:
    """Kept positions of boxes sorted by descending score: the pure-PyTorch path. With
    ``groups`` (one per box), a box only suppresses boxes of its own group."""
    alive = torch.ones(boxes.shape[0], dtype=torch.bool)  # on the host: read every step
    keep = []
    for i in range(boxes.shape[0]):
        if not alive[i]:
            continue
        keep.append(i)
        if i + 1 < boxes.shape[0]:
            over = diou_nms_scores(boxes[i], boxes[i + 1:], beta) > threshold
            if groups is not None:
                over &= groups[i + 1:] == groups[i]
            alive[i + 1:] &= ~over.cpu()
    return keep


def _diou_nms_kernel(boxes: Tensor, scores: Tensor, groups: Optional[Tensor],
                     iou_threshold: float, beta: float, eps: float) -> Tensor:
    order = _candidates_by_score(boxes, scores)
    return order[_EXT.diou_nms_sorted(boxes[order], None if groups is None else groups[order],
                                      iou_threshold, beta, eps)]


def _diou_nms_fake(boxes, scores, groups, iou_threshold, beta, eps):
    n = boxes.shape[0]
    kept = torch.library.get_ctx().new_dynamic_size(max=n if isinstance(n, int) else None)
    return boxes.new_empty((kept,), dtype=torch.long)


#: Indices (K,) of the boxes (N, 4) (float32/float64) kept by DIoU-NMS, by descending score;
#: with groups (N,), within each group (batched NMS).
diou_nms_op = kernel_op('diou_nms', _diou_nms_kernel, _diou_nms_fake)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, beta: float = 1.0) -> Tensor:
    """DIoU-NMS: indices of the kept boxes, by descending score.

    Going down the boxes by score (ties: the lower index first), a box is kept unless a kept
    box ``i`` gives it ``IoU - (rho^2 / c^2)^beta > iou_threshold``; ``beta=1`` is the paper's
    default, a larger beta weakens the centre-distance term (towards plain NMS), a smaller
    one strengthens it.

    Non-finite input: a box with a NaN or infinite coordinate, or with a NaN score, is
    discarded before anything else: never kept, and it suppresses nothing (its overlap with
    another box is meaningless). Scores of ``+inf`` and ``-inf`` are ordinary sort keys (the
    first and the last). The compiled kernel and the pure-PyTorch path share this rule.

    Args:
        boxes: (N, 4) xyxy boxes (floating; half precision is compared in float32).
        scores: (N,) scores.
        iou_threshold: suppression threshold on the DIoU-NMS score.
        beta: exponent of the centre-distance term, > 0.

    Returns:
        (K,) int64 indices into ``boxes``, on boxes' device, in descending score order.

    Reference: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
    Regression", AAAI 2020.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],    # kept (best score)
        ...                       [1.0, 1.0, 11.0, 11.0],    # IoU 0.68 with box 0: dropped
        ...                       [0.0, 4.0, 10.0, 14.0]])   # IoU 0.43, centres 4 apart: kept
        >>> scores = torch.tensor([0.9, 0.8, 0.7])
        >>> mmdet_losses.diou_nms(boxes, scores, iou_threshold=0.4)
        tensor([0, 2])
        >>> boxes[0, 2] = float('nan')  # box 0 is discarded: box 1 is kept, and drops box 2
        >>> mmdet_losses.diou_nms(boxes, scores, iou_threshold=0.4)
        tensor([1])
    """
    threshold, beta = _check_nms_args(boxes, scores, iou_threshold, beta)
    return _kept(boxes, scores, None, threshold, beta)


def _kept(boxes: Tensor, scores: Tensor, groups: Optional[Tensor], threshold: float,
          beta: float) -> Tensor:
    """The kept indices of checked arguments (``groups``: batched), by the kernel where it
    applies, else by the plain path."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()
    if _EXT is not None and boxes.device.type == 'cpu' and kernel_allowed():
        return diou_nms_op(boxes, scores, groups, threshold, beta, NMS_EPS)
    order = _candidates_by_score(boxes, scores)
    kept = torch.tensor(_greedy_plain(boxes[order], threshold, beta,
                                      None if groups is None else groups[order]),
                        dtype=torch.long)
    return order[kept.to(order.device)]


def batched_diou_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float,
                     beta: float = 1.0) -> Tensor:
    """DIoU-NMS within each group (class) of ``idxs``: boxes of different groups never
    suppress each other. Returns the kept indices (K,) by descending score. Boxes with a
    non-finite coordinate or a NaN score are discarded, as by :func:`diou_nms`.

    Args:
        boxes: (N, 4) xyxy boxes.
        scores: (N,) scores.
        idxs: (N,) integer group (class) of each box.
        iou_threshold: suppression threshold on the DIoU-NMS score.
        beta: exponent of the centre-distance term, > 0.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0],
        ...                       [1.0, 1.0, 11.0, 11.0]])
        >>> scores = torch.tensor([0.9, 0.8, 0.7])
        >>> mmdet_losses.batched_diou_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.4)
        tensor([0, 2])
    """
    threshold, beta = _check_nms_args(boxes, scores, iou_threshold, beta)
    check_tensor('idxs', idxs)
    if idxs.shape != scores.shape or idxs.is_floating_point() or idxs.is_complex():
        raise ValueError(f'idxs must be an integer tensor of shape {tuple(scores.shape)}, '
                         f'got {idxs.dtype} of shape {tuple(idxs.shape)}')
    # One pass over all boxes by descending score, suppressing within a group only: the
    # same decisions as one NMS per group, merged by score (no loop over the groups, which
    # would read them on the host and break a compiled graph).
    return _kept(boxes, scores, idxs.long(), threshold, beta)


# ------------------------------------------------------------- selectable from mmcv/mmdet
def mmcv_diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, beta: float = 1.0,
                  offset: int = 0, score_threshold: float = 0,
                  max_num: int = -1) -> Tuple[Tensor, Tensor]:
    """:func:`diou_nms` with the signature and return convention of ``mmcv.ops.nms``:
    returns ``(dets, keep)``, ``dets`` (K, 5) the kept boxes with their scores. ``offset``
    (0 or 1) adds to widths and heights, boxes scoring ``<= score_threshold`` (when > 0) are
    dropped first, and ``max_num > 0`` keeps the best ``max_num``, all as mmcv's ``nms``.
    This is what ``nms=dict(type='diou_nms', iou_threshold=..., beta=...)`` runs in mmcv's
    ``batched_nms``."""
    check_choice('offset', offset, (0, 1))
    geometry = boxes
    if offset:
        geometry = torch.cat((boxes[:, :2], boxes[:, 2:] + offset), dim=1)
    if score_threshold > 0:
        candidates = torch.nonzero(scores > score_threshold).flatten()
        keep = candidates[diou_nms(geometry[candidates], scores[candidates], iou_threshold,
                                   beta)]
    else:
        keep = diou_nms(geometry, scores, iou_threshold, beta)
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat((boxes[keep], scores[keep].reshape(-1, 1).to(boxes.dtype)), dim=1), keep


def _add_to_mmcv(module) -> None:
    module.diou_nms = mmcv_diou_nms


class _AddAfterExec(importlib.abc.Loader):
    """Wraps the loader of ``mmcv.ops.nms``: executes the module, then adds the op."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _add_to_mmcv(module)


class _MmcvNmsFinder(importlib.abc.MetaPathFinder):
    """Finds ``mmcv.ops.nms`` as the path finder does, with the loader wrapped."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _MMCV_NMS_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _AddAfterExec(spec.loader)
        return spec


def register_mmcv_diou_nms() -> None:
    """Make ``'diou_nms'`` an NMS type of mmcv's ``batched_nms``: add the op to
    ``mmcv.ops.nms`` now if it is imported, else as soon as it is (mmcv stays optional and
    is not imported here, which would slow the import of this package)."""
    module = sys.modules.get(_MMCV_NMS_MODULE)
    if module is not None:
        _add_to_mmcv(module)
    elif not any(isinstance(f, _MmcvNmsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MmcvNmsFinder())


register_mmcv_diou_nms()
