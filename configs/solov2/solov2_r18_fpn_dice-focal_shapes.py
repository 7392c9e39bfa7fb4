# SOLOv2 (Wang et al., "SOLOv2: Dynamic and Fast Instance Segmentation", NeurIPS 2020) with a
# ResNet-18 trained from scratch (init_cfg=None, half width: base_channels=32), on the bundled
# shapes with their instance masks (tools/make_shapes.py writes each object's shape as an RLE
# `segmentation`). The mask loss is this package's DiceLoss and the category loss its
# FocalLoss, with mmdet's SOLOv2 arguments (use_sigmoid=True, loss_weight=3.0; gamma 2, alpha
# 0.25). The head is sized for 128x128 images (mmdet's SOLOv2-light scale ranges and grids,
# scaled down); evaluation is COCO's segm metric (SOLOv2 predicts masks, not boxes).
_base_ = [
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    type='SOLOv2',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=32, num_stages=4, out_indices=(0, 1, 2, 3),
        frozen_stages=-1, norm_eval=False, norm_cfg=dict(type='BN'), style='pytorch',
        init_cfg=None),
    neck=dict(
        type='FPN', in_channels=[32, 64, 128, 256], out_channels=64, start_level=0,
        num_outs=5),
    mask_head=dict(
        type='SOLOV2Head',
        num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
        in_channels=64,
        feat_channels=128,
        stacked_convs=2,
        strides=[8, 8, 16, 32, 32],
        scale_ranges=((1, 16), (8, 32), (16, 64), (32, 128), (64, 256)),
        pos_scale=0.2,
        num_grids=[20, 16, 12, 8, 6],
        cls_down_index=0,
        mask_feature_head=dict(
            feat_channels=64, start_level=0, end_level=3, out_channels=64, mask_stride=4,
            norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
        loss_mask=dict(type='mmdet_losses.DiceLoss', use_sigmoid=True, loss_weight=3.0),
        loss_cls=dict(
            type='mmdet_losses.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0)),
    test_cfg=dict(
        nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel='gaussian',
        sigma=2.0, max_per_img=100))

# the instance masks are loaded too (the dataset's pipelines load boxes only)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=_base_.img_scale, keep_ratio=True),  # noqa: F821
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=_base_.img_scale, keep_ratio=True),  # noqa: F821
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(metric='segm')
test_evaluator = val_evaluator
