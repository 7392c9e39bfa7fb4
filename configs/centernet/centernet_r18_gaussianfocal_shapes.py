# CenterNet (Zhou et al., "Objects as Points", 2019) with a ResNet-18 trained from scratch
# (init_cfg=None, half width: base_channels=32) and a light deconvolution neck (stride 4), on
# the bundled shapes. The heatmap loss is this package's GaussianFocalLoss, the size and
# offset losses its L1Loss, with mmdet's CenterNet weights (1.0, 0.1, 1.0).
_base_ = [
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    type='CenterNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet', depth=18, base_channels=32, frozen_stages=-1, norm_eval=False,
        norm_cfg=dict(type='BN'), init_cfg=None),
    neck=dict(
        type='CTResNetNeck',
        in_channels=256,
        num_deconv_filters=(128, 64, 64),
        num_deconv_kernels=(4, 4, 4),
        use_dcn=False),
    bbox_head=dict(
        type='CenterNetHead',
        num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
        in_channels=64,
        feat_channels=64,
        loss_center_heatmap=dict(
            type='mmdet_losses.GaussianFocalLoss', alpha=2.0, gamma=4.0, loss_weight=1.0),
        loss_wh=dict(type='mmdet_losses.L1Loss', loss_weight=0.1),
        loss_offset=dict(type='mmdet_losses.L1Loss', loss_weight=1.0)),
    train_cfg=None,
    test_cfg=dict(topk=100, local_maximum_kernel=3, max_per_img=100))

# CenterNetHead subtracts the test image's ``border`` (where the image sits in the padded
# input), which mmdet's test-time RandomCenterCropPad records: pad after the resize as mmdet's
# CenterNet does (normalisation is left to the data preprocessor)
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None, to_float32=True),
    dict(type='Resize', scale=_base_.img_scale, keep_ratio=True),  # noqa: F821
    dict(type='RandomCenterCropPad', ratios=None, border=None, mean=[0, 0, 0], std=[1, 1, 1],
         to_rgb=True, test_mode=True, test_pad_mode=['logical_or', 31], test_pad_add_pix=1),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'border')),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
