"""Detector integration: the bundled dataset, the configs, and training/testing/resuming
through tools/train.py and tools/test.py on tiny images."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from _integration_utils import (CONFIGS, FASTER_RCNN_DIOU_NMS, POISON_MALLOC, RETINANET, TINY,
                                assert_finite_checkpoint, assert_finite_grad_norms,
                                assert_finite_losses, load_tool, make_tiny_data,
                                read_train_scalars, shrink, train_in_subprocess)
import make_shapes


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp('shapes'))


# --- the dataset generator --------------------------------------------------------------------

def _all_files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_generator_is_deterministic(tmp_path):
    first, second = tmp_path / 'a', tmp_path / 'b'
    make_shapes.make_shapes(str(first), verbose=False, **TINY)
    make_shapes.make_shapes(str(second), verbose=False, **TINY)
    files = _all_files(first)
    assert files == _all_files(second)
    assert len(files) == TINY['num_train'] + TINY['num_val'] + 2
    _, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert mismatch == [] and errors == []
    # an image does not depend on how many others were asked for
    img, objects = make_shapes.draw_image(0, 'train', 1, TINY['img_size'])
    img_again, objects_again = make_shapes.draw_image(0, 'train', 1, TINY['img_size'])
    assert np.array_equal(img, img_again) and objects == objects_again
    # a different seed gives different images
    other, _ = make_shapes.draw_image(1, 'train', 1, TINY['img_size'])
    assert not np.array_equal(img, other)


def test_generator_boxes_are_tight_and_valid(tmp_path):
    size = 96
    for index in range(6):
        img, objects = make_shapes.draw_image(3, 'val', index, size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert 1 <= len(objects) <= 6
        for kind, (x1, y1, x2, y2), area in objects:
            assert kind in (0, 1, 2)
            assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
            assert 0 < area <= (x2 - x1) * (y2 - y1)
    # the box is the drawn extent: a rectangle's mask fills it exactly
    rng = np.random.default_rng(0)
    mask = make_shapes._shape_mask(rng, 0, 20, size)
    x1, y1, x2, y2 = make_shapes._tight_box(mask)
    assert np.count_nonzero(mask) == (x2 - x1) * (y2 - y1)
    assert mask[y1:y2, x1:x2].all()

    make_shapes.make_shapes(str(tmp_path), num_train=3, num_val=2, img_size=size, seed=3,
                            verbose=False)
    with open(make_shapes.ann_file(str(tmp_path), 'val')) as f:
        coco = json.load(f)
    assert [c['name'] for c in coco['categories']] == list(make_shapes.CLASSES)
    assert [im['file_name'] for im in coco['images']] == ['000000.png', '000001.png']
    expected = [[x1, y1, x2 - x1, y2 - y1]
                for i in range(2) for _, (x1, y1, x2, y2), _ in
                make_shapes.draw_image(3, 'val', i, size)[1]]
    assert [a['bbox'] for a in coco['annotations']] == expected
    assert make_shapes.ensure_shapes(str(tmp_path)) is False  # already there: untouched


# --- every config builds its detector with our losses inside -----------------------------------

def _expected_loss_types(model_cfg):
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get('type', '')).endswith('Loss'):
                found.append(node['type'])
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
    walk(model_cfg)
    return found


@pytest.mark.parametrize('config', CONFIGS, ids=[osp.basename(c) for c in CONFIGS])
def test_config_builds_with_our_losses(config):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample

    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(imports=['mmdet_losses'], allow_failed_imports=False)
    init_default_scope('mmdet')
    expected = _expected_loss_types(cfg.model)
    assert expected and all(t.startswith('mmdet_losses.') for t in expected), expected

    model = MODELS.build(cfg.model)
    losses = [m for m in model.modules() if type(m).__name__.endswith('Loss')]
    assert sorted(type(m).__name__ for m in losses) == sorted(t.split('.')[1] for t in expected)
    assert all(type(m).__module__.startswith('mmdet_losses.') for m in losses)
    assert model.backbone.depth == 18 and cfg.model.backbone.init_cfg is None
    head = getattr(model, 'bbox_head', None) or model.roi_head.bbox_head
    assert head.num_classes == 3
    # the model predicts: every box of one tiny image (no score threshold, so that the NMS
    # of the config, DIoU-NMS included, has work to do) is finite and inside the image
    test_cfg = cfg.model.test_cfg.get('rcnn', cfg.model.test_cfg)
    test_cfg.score_thr = 0.0
    model = MODELS.build(cfg.model).eval()
    shape = (64, 64)
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         batch_input_shape=shape, scale_factor=(1.0, 1.0),
                                         border=(0, 0, 0, 0)))  # read by CenterNet
    with torch.no_grad():
        result = model.predict(torch.rand(1, 3, *shape), [sample])[0].pred_instances
    assert len(result.bboxes) > 0
    assert torch.isfinite(result.bboxes).all() and torch.isfinite(result.scores).all()
    if cfg.model.type != 'CenterNet':  # mmdet's CenterNetHead does not clip its boxes
        assert (result.bboxes >= 0).all() and (result.bboxes <= 64).all()


# --- training, evaluation and resuming through the tools ---------------------------------------

def _train(config, data_root, work_dir, epochs, extra_args=()):
    train = load_tool('train')
    args = train.parse_args([config, '--work-dir', str(work_dir), *extra_args])
    return train.run_train(shrink(train.build_config(args), data_root, work_dir, epochs))


def _test(config, checkpoint, data_root, work_dir):
    test_tool = load_tool('test')
    args = test_tool.parse_args([config, checkpoint, '--work-dir', str(work_dir)])
    return test_tool.run_test(shrink(test_tool.build_config(args), data_root, work_dir))


def test_retinanet_trains_two_iterations_and_resumes(tiny_data, tmp_path):
    work_dir = tmp_path / 'retinanet'
    runner = _train(RETINANET, tiny_data, work_dir, epochs=1)
    assert runner.iter == 2 and runner.epoch == 1
    first = read_train_scalars(work_dir)
    assert [r['step'] for r in first] == [1, 2]
    assert_finite_losses(first)
    assert {'loss_cls', 'loss_bbox'} <= set(first[0])
    assert osp.isfile(work_dir / 'epoch_1.pth')

    # interrupted after epoch 1: resume continues from its checkpoint to epoch 2
    resumed = _train(RETINANET, tiny_data, work_dir, epochs=2, extra_args=['--resume'])
    assert resumed.iter == 4 and resumed.epoch == 2
    second = read_train_scalars(work_dir)
    assert [r['step'] for r in second] == [3, 4]
    assert_finite_losses(second)


def test_retinanet_amp_trains_with_finite_losses(tiny_data, tmp_path):
    """--amp trains: finite losses, a finite gradient norm at every step and finite weights in
    the checkpoint. In a child process with glibc's malloc poisoned (POISON_MALLOC), so that a
    kernel reading uninitialised memory (torch 2.13's oneDNN bfloat16 conv weight gradient on a
    1-pixel-wide input: the P6->P7 conv at 64 px, see tests/test_upstream_onednn.py) fails
    every run instead of one run in three."""
    name = train_in_subprocess(RETINANET, tiny_data, tmp_path, epochs=1, extra_args=['--amp'],
                               env=POISON_MALLOC)
    assert name == ('AmpOptimWrapper' if torch.cuda.is_available() else 'CPUAmpOptimWrapper')
    records = read_train_scalars(tmp_path)
    assert [r['step'] for r in records] == [1, 2]
    assert_finite_losses(records)
    assert_finite_grad_norms(records)
    assert assert_finite_checkpoint(tmp_path / 'epoch_1.pth') > 100


def test_cpu_amp_wrapper_runs_backward_without_onednn():
    """The workaround for torch 2.13's oneDNN bfloat16 conv weight gradient: the CPU AMP
    wrapper's backward runs with oneDNN off (seen from inside the backward pass), the forward
    under bfloat16 autocast, and the flag is restored after a backward that raises too."""
    train = load_tool('train')
    model = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.constant_(model.weight, 0.5)
    wrapper = train.CPUAmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    seen = []
    model.weight.register_hook(lambda grad: seen.append(torch.backends.mkldnn.enabled))
    assert torch.backends.mkldnn.enabled
    with wrapper.optim_context(model):
        out = model(torch.tensor([[1.0, 2.0, 4.0]]))
    assert out.dtype == torch.bfloat16 and out.item() == 3.5
    wrapper.update_params(out.float().sum())
    assert seen == [False] and torch.backends.mkldnn.enabled
    # SGD step: w - 0.1 * x
    assert model.weight[0].tolist() == pytest.approx([0.4, 0.3, 0.1])
    with pytest.raises(RuntimeError):
        wrapper.backward(out.float().sum())  # the graph is freed: raises inside the block
    assert torch.backends.mkldnn.enabled


def test_faster_rcnn_trains_two_iterations_and_tests_with_diou_nms(tiny_data, tmp_path):
    work_dir = tmp_path / 'frcnn'
    runner = _train(FASTER_RCNN_DIOU_NMS, tiny_data, work_dir, epochs=1)
    assert runner.iter == 2
    records = read_train_scalars(work_dir)
    assert_finite_losses(records)
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= set(records[0])
    assert runner.cfg.model.test_cfg.rcnn.nms.type == 'diou_nms'

    metrics = _test(FASTER_RCNN_DIOU_NMS, str(work_dir / 'epoch_1.pth'), tiny_data,
                    tmp_path / 'test')
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    with open(tmp_path / 'test' / 'metrics.json') as f:
        assert json.load(f)['coco/bbox_mAP'] == pytest.approx(metrics['coco/bbox_mAP'])


# --- the loss comparison -----------------------------------------------------------------------

@pytest.mark.parametrize('name,loss_type,decoded', [
    ('SmoothL1', 'mmdet_losses.SmoothL1Loss', False),
    ('DIoU', 'mmdet_losses.DIoULoss', True),
])
def test_compare_losses_changes_only_the_box_loss_and_the_length(tmp_path, name, loss_type,
                                                                  decoded):
    from mmengine.config import Config
    compare = load_tool('compare_losses')
    base = Config.fromfile(RETINANET)
    variant = Config.fromfile(compare.write_variant_config(RETINANET, name, str(tmp_path), 3))
    head = variant.model.bbox_head
    assert head.loss_bbox.type == loss_type and head.reg_decoded_bbox is decoded
    assert set(head.loss_bbox) == set(compare.LOSSES[name][0])  # nothing left of CIoU's dict
    assert head.loss_cls == base.model.bbox_head.loss_cls
    assert variant.model.backbone == base.model.backbone
    assert variant.train_cfg.max_epochs == 3
    warmup, cosine = variant.param_scheduler
    assert warmup == base.param_scheduler[0]  # iteration-based: untouched
    assert cosine.T_max == 3 and cosine.end == 3


@pytest.mark.parametrize('config,keys', [
    ('centernet/centernet_r18_gaussianfocal_shapes.py',
     {'loss_center_heatmap', 'loss_wh', 'loss_offset'}),
    ('faster_rcnn/faster-rcnn_r18_fpn_seesaw_shapes.py',
     {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls_objectness', 'loss_cls_classes', 'loss_bbox'}),
], ids=['centernet_gaussian_focal', 'faster_rcnn_seesaw'])
def test_new_loss_configs_train_and_validate(tiny_data, tmp_path, config, keys):
    """CenterNet (GaussianFocalLoss, L1Loss) and Faster R-CNN (SeesawLoss with its custom
    classifier) train two iterations through tools/train.py and validate."""
    runner = _train(osp.join(osp.dirname(RETINANET), '..', config), tiny_data, tmp_path,
                    epochs=1)
    assert runner.iter == 2
    records = read_train_scalars(tmp_path)
    assert_finite_losses(records)
    assert keys <= set(records[0])
