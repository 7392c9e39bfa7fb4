"""Drop-in equivalence: a detector whose loss dicts are mmdet's with only the types prefixed
``mmdet_losses.`` (every argument kept) trains with the same logged losses, iteration by
iteration, as with mmdet's own losses (same initial weights, same batches, same seed, CPU)."""
import copy

import pytest
import torch

from _integration_utils import ROOT, TINY_SIZE, make_tiny_data

ITERATIONS = 3

RETINANET_LOSSES = dict(
    bbox_head=dict(
        reg_decoded_bbox=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='CIoULoss', loss_weight=2.0)))
FASTER_RCNN_LOSSES = dict(
    rpn_head=dict(
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(bbox_head=dict(
        reg_decoded_bbox=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))))

SEESAW_LOSSES = dict(roi_head=dict(bbox_head=dict(
    loss_cls=dict(type='SeesawLoss', p=0.8, q=2.0, num_classes=3, loss_weight=1.0))))
CENTERNET_LOSSES = dict(bbox_head=dict(
    loss_center_heatmap=dict(type='GaussianFocalLoss', alpha=2.0, gamma=4.0, loss_weight=1.0),
    loss_wh=dict(type='L1Loss', loss_weight=0.1),
    loss_offset=dict(type='L1Loss', loss_weight=1.0)))
SOLOV2_LOSSES = dict(mask_head=dict(
    loss_mask=dict(type='DiceLoss', use_sigmoid=True, loss_weight=3.0),
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)))


def _prefixed(node):
    """``node`` with every loss type prefixed by ``mmdet_losses.``."""
    if isinstance(node, dict):
        out = {k: _prefixed(v) for k, v in node.items()}
        if str(out.get('type', '')).endswith('Loss'):
            out['type'] = 'mmdet_losses.' + out['type']
        return out
    return node


def _model_cfg(config, losses):
    """The config's model with ``losses`` put in."""
    from mmengine.config import Config, ConfigDict
    model = Config.fromfile(f'{ROOT}/configs/{config}').model.to_dict()

    def merge(dst, src):  # a dict with a type (a loss) replaces, other dicts merge
        for key, value in src.items():
            if isinstance(value, dict) and 'type' not in value and key in dst:
                merge(dst[key], value)
            else:
                dst[key] = copy.deepcopy(value)
    merge(model, losses)
    return ConfigDict(model)  # mmdet's two-stage detectors read train_cfg by attribute


def _batches(data_root, count, with_mask=False):
    """``count`` batches of 2 tiny training images, fixed order, no random flip (with the
    instance masks for a mask head)."""
    from mmengine.dataset import pseudo_collate
    from mmdet.registry import DATASETS
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
        dict(type='Resize', scale=(TINY_SIZE, TINY_SIZE), keep_ratio=True),
        dict(type='PackDetInputs'),
    ]
    dataset = DATASETS.build(dict(
        type='CocoDataset', data_root=data_root, ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=dict(classes=('rectangle', 'ellipse',
                                                              'triangle')),
        filter_cfg=dict(filter_empty_gt=True), pipeline=pipeline))
    items = [dataset[i % len(dataset)] for i in range(2 * count)]
    return [pseudo_collate(items[2 * i:2 * i + 2]) for i in range(count)]


def _logged_losses(model_cfg, state, batches, seed=0):
    from mmengine.optim import OptimWrapper
    from mmdet.registry import MODELS
    model = MODELS.build(model_cfg)
    model.load_state_dict(state)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    torch.manual_seed(seed)  # the RPN and RoI samplers draw from it
    logs = []
    for batch in batches:
        log_vars = model.train_step(copy.deepcopy(batch), optim)
        logs.append({k: float(v) for k, v in log_vars.items()})
    return logs


@pytest.mark.parametrize('config,losses', [
    ('retinanet/retinanet_r18_fpn_focal-ciou_shapes.py', RETINANET_LOSSES),
    ('faster_rcnn/faster-rcnn_r18_fpn_ce-giou_shapes.py', FASTER_RCNN_LOSSES),
    ('faster_rcnn/faster-rcnn_r18_fpn_seesaw_shapes.py', SEESAW_LOSSES),
    ('centernet/centernet_r18_gaussianfocal_shapes.py', CENTERNET_LOSSES),
    ('solov2/solov2_r18_fpn_dice-focal_shapes.py', SOLOV2_LOSSES),
], ids=['retinanet_focal_ciou', 'faster_rcnn_ce_l1_giou', 'faster_rcnn_seesaw',
        'centernet_gaussian_focal', 'solov2_dice_focal'])
def test_prefixed_losses_train_like_mmdet(config, losses, tmp_path):
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    import mmdet_losses  # noqa: F401 (registers the prefixed types)

    init_default_scope('mmdet')
    batches = _batches(make_tiny_data(tmp_path), ITERATIONS, with_mask='mask_head' in losses)
    mmdet_cfg = _model_cfg(config, losses)
    ours_cfg = _model_cfg(config, _prefixed(losses))
    torch.manual_seed(0)
    reference_model = MODELS.build(mmdet_cfg)
    reference_model.init_weights()
    state = copy.deepcopy(reference_model.state_dict())

    reference = _logged_losses(mmdet_cfg, state, batches)
    ours = _logged_losses(ours_cfg, state, batches)
    assert len(ours) == len(reference) == ITERATIONS
    for step, (got, expected) in enumerate(zip(ours, reference), 1):
        assert got.keys() == expected.keys(), step
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), (
                f'iteration {step}: {key} is {got[key]} with mmdet_losses, '
                f'{expected[key]} with mmdet')
        # the losses are not trivially zero: the comparison means something
        assert expected['loss'] > 0
        if 'mask_head' in losses:  # positives: the mask loss is DiceLoss's, not a 0
            assert expected['loss_mask'] > 0
