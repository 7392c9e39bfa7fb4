"""CrossEntropyLoss(use_mask=True), the mask-head loss of Mask R-CNN: against mmdet's
CrossEntropyLoss(use_mask=True), a plain formula, mmdet's FCNMaskHead, and at the edges."""
import types

import pytest
import torch
import torch.nn.functional as TF
from _helpers import (HALF_DTYPES, assert_finite, assert_zero_in_graph, double_leaf,
                      mmdet_loss)

import mmdet_losses
from mmdet_losses import functional as F

pytest.importorskip('mmcv.ops', reason='mmdet (the reference) needs mmcv')

N, H, W = 6, 7, 5


def _inputs(num_classes, seed=0, num_rois=N):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(num_rois, num_classes, H, W, generator=gen) * 3
    target = (torch.rand(num_rois, H, W, generator=gen) > 0.5).float()
    label = torch.randint(0, num_classes, (num_rois,), generator=gen)
    return pred, target, label


def _plain(pred, target, label):
    """The loss written out: each RoI's own class channel, BCE with logits, mean over all."""
    selected = torch.stack([pred[i, int(label[i])] for i in range(pred.shape[0])])
    return TF.binary_cross_entropy_with_logits(selected, target, reduction='mean')


@pytest.mark.parametrize('loss_weight', [1.0, 0.5])
@pytest.mark.parametrize('num_classes', [1, 5])
def test_value_and_gradient_match_mmdet(num_classes, loss_weight):
    pred, target, label = _inputs(num_classes)
    ours = mmdet_losses.CrossEntropyLoss(use_mask=True, loss_weight=loss_weight)
    ref = mmdet_loss('CrossEntropyLoss', use_mask=True, loss_weight=loss_weight)
    leaf, ref_leaf = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    out, expect = ours(leaf, target, label), ref(ref_leaf, target, label)
    assert out.shape == expect.shape == (1,)
    torch.testing.assert_close(out, expect)
    torch.testing.assert_close(out, loss_weight * _plain(pred, target, label)[None])
    out.sum().backward()
    expect.sum().backward()
    torch.testing.assert_close(leaf.grad, ref_leaf.grad)


def test_single_class_weight_and_call_options_match_mmdet():
    """A one-value class_weight (mmdet multiplies every element by it), avg_non_ignore (no
    effect: nothing is ignored), reduction_override='mean', soft targets."""
    pred, _, label = _inputs(4, seed=1)
    target = torch.rand(N, H, W, generator=torch.Generator().manual_seed(2))
    params = dict(use_mask=True, class_weight=[2.5], avg_non_ignore=True, loss_weight=0.7)
    ours, ref = mmdet_losses.CrossEntropyLoss(**params), mmdet_loss('CrossEntropyLoss', **params)
    torch.testing.assert_close(ours(pred, target, label, reduction_override='mean'),
                               ref(pred, target, label, reduction_override='mean'))


def test_per_class_weight_weights_each_roi_by_its_class():
    pred, target, label = _inputs(3, seed=3)
    class_weight = [1.0, 0.0, 3.0]
    out = F.mask_cross_entropy_loss(pred, target, label, class_weight=class_weight)
    per_roi = TF.binary_cross_entropy_with_logits(pred[torch.arange(N), label], target,
                                                  reduction='none')
    scale = torch.tensor(class_weight)[label].view(N, 1, 1)
    torch.testing.assert_close(out, (per_roi * scale).mean()[None])


def test_functional_forms_agree():
    pred, target, label = _inputs(5, seed=4)
    torch.testing.assert_close(F.cross_entropy_loss(pred, target, label, use_mask=True),
                               F.mask_cross_entropy_loss(pred, target, label))


def test_gradcheck_float64():
    pred, target, label = _inputs(3, seed=5, num_rois=3)
    pred, target = double_leaf(pred[:, :, :3, :2]), double_leaf(target[:, :3, :2] * 0.8 + 0.1)
    assert torch.autograd.gradcheck(
        lambda p, t: F.mask_cross_entropy_loss(p, t, label, class_weight=[0.5, 1.0, 2.0]),
        (pred, target))


def test_empty_input_is_a_zero_in_the_graph_where_mmdet_gives_nan():
    pred = torch.randn(0, 5, H, W, requires_grad=True)
    target, label = torch.zeros(0, H, W), torch.zeros(0, dtype=torch.long)
    expect = mmdet_loss('CrossEntropyLoss', use_mask=True)(pred, target, label)
    assert torch.isnan(expect).all()  # mmdet: the mean of nothing
    out = mmdet_losses.CrossEntropyLoss(use_mask=True)(pred, target, label)
    assert out.shape == (1,)
    assert_zero_in_graph(out, pred)


@pytest.mark.parametrize('dtype', HALF_DTYPES, ids=str)
def test_half_precision_is_finite_and_close(dtype):
    pred, target, label = _inputs(5, seed=6)
    pred = pred * 10  # saturated logits too
    leaf = pred.to(dtype).requires_grad_(True)
    out = mmdet_losses.CrossEntropyLoss(use_mask=True)(leaf, target.to(dtype), label)
    out.sum().backward()
    assert out.dtype == dtype
    assert_finite(out, leaf.grad)
    full = F.mask_cross_entropy_loss(pred.to(dtype).float(), target, label)
    torch.testing.assert_close(out.float(), full, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize('call, error, match', [
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, lab[:, None]), ValueError,
     r'label must have the shape \(6,\), one class index per RoI, got \(6, 1\)'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, lab[:4]), ValueError,
     r'label must have the shape \(6,\), one class index per RoI, got \(4,\)'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, torch.full((6,), 5)), ValueError,
     r'label must hold class indices in \[0, 4\], got 5'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, torch.full((6,), -1)), ValueError,
     r'label must hold class indices in \[0, 4\], got -1'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, lab.float()), TypeError,
     r'label must be an integer tensor of class indices, got dtype torch.float32'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True)(p, t), TypeError,
     r"label must be a torch.Tensor of class indices \(N,\), the third argument \(mmdet's "
     r'weight position\), got NoneType'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t[:, :, :4], lab), ValueError,
     r"target must have the shape \(6, 7, 5\) \(pred's shape \(6, 5, 7, 5\) without C\), "
     r'got \(6, 7, 4\)'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p[:, :, 0, 0], t, lab), ValueError,
     r'pred must be \(N, C, H, W\) mask logits \(at least 3-D\), got shape \(6, 5\)'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t.long(), lab), TypeError,
     r'target must be a floating-point tensor, got dtype torch.int64'),
    (lambda p, t, lab: F.mask_cross_entropy_loss(p, t, lab, class_weight=[1.0, 2.0]),
     ValueError, r'class_weight must have one value per class \(5\) or a single value, '
                 r'got shape \(2,\)'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True)(
        p, t, lab, reduction_override='sum'), ValueError,
     r"reduction must be 'mean' for the mask cross-entropy .*, got 'sum'"),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True)(p, t, lab, avg_factor=3),
     ValueError, r'avg_factor must be None for the mask cross-entropy .*, got 3'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True)(p, t, lab, ignore_index=0),
     ValueError, r'ignore_index must be None for the mask cross-entropy .*, got 0'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True, reduction='sum'),
     ValueError, r"reduction must be 'mean' for the mask cross-entropy .*, got 'sum'"),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True, ignore_index=255),
     ValueError, r'ignore_index must be None for the mask cross-entropy .*, got 255'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_mask=True, label_smoothing=0.1),
     ValueError, r'label_smoothing must be 0 with use_mask=True, got 0.1'),
    (lambda p, t, lab: mmdet_losses.CrossEntropyLoss(use_sigmoid=True, use_mask=True),
     ValueError, r'use_sigmoid must be False with use_mask=True .*, got use_sigmoid=True'),
])
def test_bad_input_is_named(call, error, match):
    pred, target, label = _inputs(5, seed=7)
    with pytest.raises(error, match=match):
        call(pred, target, label)


def _fcn_mask_head(loss_type, class_agnostic):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='FCNMaskHead', num_convs=1, roi_feat_size=7, in_channels=8, conv_out_channels=8,
        num_classes=5, class_agnostic=class_agnostic,
        loss_mask=dict(type=loss_type, use_mask=True, loss_weight=1.0)))


@pytest.mark.parametrize('class_agnostic', [False, True])
def test_fcn_mask_head_loss_matches_mmdet(class_agnostic):
    """mmdet's FCNMaskHead.loss_and_target, its targets cropped from bitmap masks, with our loss
    and with mmdet's, on the same weights and features."""
    from mmengine.config import ConfigDict
    from mmengine.structures import InstanceData
    from mmdet.structures.mask import BitmapMasks

    ours_head = _fcn_mask_head('mmdet_losses.CrossEntropyLoss', class_agnostic)
    ref_head = _fcn_mask_head('CrossEntropyLoss', class_agnostic)
    assert type(ours_head.loss_mask) is mmdet_losses.CrossEntropyLoss
    assert type(ref_head.loss_mask) is not mmdet_losses.CrossEntropyLoss
    ref_head.load_state_dict(ours_head.state_dict())

    gen = torch.Generator().manual_seed(8)
    gt_masks = BitmapMasks((torch.rand(2, 32, 32, generator=gen) > 0.5).numpy(), 32, 32)
    batch_gt_instances = [InstanceData(masks=gt_masks)]
    sampling = types.SimpleNamespace(
        pos_priors=torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 2.0, 30.0, 20.0],
                                 [10.0, 10.0, 31.0, 31.0]]),
        pos_assigned_gt_inds=torch.tensor([0, 1, 1]), pos_gt_labels=torch.tensor([3, 0, 4]))
    features = torch.randn(3, 8, 7, 7, generator=gen)
    cfg = ConfigDict(mask_size=14)

    results = []
    for head in (ours_head, ref_head):
        mask_preds = head(features)
        assert mask_preds.shape == (3, 1 if class_agnostic else 5, 14, 14)
        out = head.loss_and_target(mask_preds, [sampling], batch_gt_instances, cfg)
        loss = out['loss_mask']['loss_mask']
        loss.sum().backward()
        results.append((loss, head.conv_logits.weight.grad))
    (loss, grad), (expect, expect_grad) = results
    torch.testing.assert_close(loss, expect)
    torch.testing.assert_close(grad, expect_grad)
