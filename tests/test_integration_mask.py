"""The instance masks of the bundled shapes and the mask-head config that trains on them:
SOLOv2 with ``mmdet_losses.DiceLoss`` (masks) and ``mmdet_losses.FocalLoss`` (categories),
configs/solov2/solov2_r18_fpn_dice-focal_shapes.py, two iterations through tools/train.py on
the tiny data, then COCO's segm evaluation. The drop-in row for this config (prefixed types
train with mmdet's logged losses) is in tests/test_integration_dropin.py."""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest

from _integration_utils import (ROOT, TINY, assert_finite_grad_norms, assert_finite_losses,
                                load_tool, make_tiny_data, read_train_scalars, shrink)
import make_shapes

SOLOV2 = osp.join(ROOT, 'configs', 'solov2', 'solov2_r18_fpn_dice-focal_shapes.py')


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp('shapes_masks'))


def test_segmentation_is_each_drawn_shape_exactly(tiny_data):
    """Every annotation's RLE decodes to the mask the generator drew: its pixel count is the
    annotation's area and its tight extent the box; the image shows the object's colour on
    every pixel of the mask that no later object covers."""
    from pycocotools import mask as mask_utils
    import cv2
    with open(make_shapes.ann_file(tiny_data, 'train')) as f:
        coco = json.load(f)
    by_image = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    assert len(by_image) == TINY['num_train']
    for image_id, anns in by_image.items():
        img, objects, masks = make_shapes.draw_image_with_masks(
            TINY['seed'], 'train', image_id, TINY['img_size'])
        assert len(anns) == len(objects) == len(masks)
        saved = cv2.imread(osp.join(tiny_data, 'train', f'{image_id:06d}.png'))
        assert np.array_equal(saved, img)
        covered = np.zeros(img.shape[:2], bool)
        for ann, mask in zip(reversed(anns), reversed(masks)):  # the last drawn is on top
            decoded = mask_utils.decode(ann['segmentation']).astype(bool)
            assert ann['segmentation']['size'] == [TINY['img_size']] * 2
            assert np.array_equal(decoded, mask > 0)
            assert decoded.sum() == ann['area']
            ys, xs = np.nonzero(decoded)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                                   ys.max() + 1 - ys.min()]
            visible = decoded & ~covered
            colours = np.unique(img[visible].reshape(-1, 3), axis=0)
            assert len(colours) == 1  # one colour: the object's own
            covered |= decoded
    # draw_image is draw_image_with_masks without the masks (the images and boxes unchanged)
    img, objects = make_shapes.draw_image(TINY['seed'], 'val', 1, TINY['img_size'])
    img2, objects2, _ = make_shapes.draw_image_with_masks(TINY['seed'], 'val', 1,
                                                          TINY['img_size'])
    assert np.array_equal(img, img2) and objects == objects2


def test_solov2_dice_focal_trains_and_evaluates_segm(tiny_data, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(SOLOV2)
    head = cfg.model.mask_head
    assert head.loss_mask == dict(type='mmdet_losses.DiceLoss', use_sigmoid=True,
                                  loss_weight=3.0)
    assert head.loss_cls.type == 'mmdet_losses.FocalLoss' and head.num_classes == 3

    train = load_tool('train')
    args = train.parse_args([SOLOV2, '--work-dir', str(tmp_path)])
    cfg = shrink(train.build_config(args), tiny_data, tmp_path, 1)
    # two iterations from scratch score below the config's thresholds: keep every
    # prediction, so that the evaluation has masks to score
    cfg.model.test_cfg.update(score_thr=0.0, filter_thr=0.0)
    runner = train.run_train(cfg)
    assert runner.iter == 2
    from mmdet_losses import DiceLoss, FocalLoss
    model_head = runner.model.mask_head
    assert type(model_head.loss_mask) is DiceLoss and type(model_head.loss_cls) is FocalLoss
    records = read_train_scalars(tmp_path)
    assert [r['step'] for r in records] == [1, 2]
    assert_finite_losses(records)
    assert_finite_grad_norms(records)
    assert {'loss_mask', 'loss_cls'} <= set(records[0])
    assert all(r['loss_mask'] > 0 for r in records)
    # the validation at the end of the epoch ran COCO's segm evaluation
    files = sorted(glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json')))
    with open(files[-1]) as f:
        evaluated = [json.loads(line) for line in f if 'coco/segm_mAP' in line]
    assert evaluated, 'no segm metric logged'
    assert 0.0 <= evaluated[-1]['coco/segm_mAP'] <= 1.0


def test_a_dataset_without_masks_is_generated_again(tmp_path):
    """data/shapes written before the generator wrote masks (boxes only) is regenerated on
    first use (tools/train.py calls ensure_shapes); the images and boxes do not change."""
    root = str(tmp_path)
    make_shapes.make_shapes(root, verbose=False, **TINY)
    path = make_shapes.ann_file(root, 'train')
    with open(path) as f:
        coco = json.load(f)
    with_masks = json.dumps(coco)
    for ann in coco['annotations']:
        del ann['segmentation']
    with open(path, 'w') as f:
        json.dump(coco, f)
    before = {name: open(osp.join(root, 'train', name), 'rb').read()
              for name in sorted(os.listdir(osp.join(root, 'train')))}
    assert make_shapes.ensure_shapes(root, **TINY) is True
    with open(path) as f:
        assert json.dumps(json.load(f)) == with_masks
    for name, data in before.items():
        assert open(osp.join(root, 'train', name), 'rb').read() == data
    assert make_shapes.ensure_shapes(root, **TINY) is False  # complete now: untouched
