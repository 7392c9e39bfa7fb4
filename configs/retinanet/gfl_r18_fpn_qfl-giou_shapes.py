# Quality focal loss needs a head that trains its classifier against IoU-quality targets:
# RetinaHead passes hard labels, so this is the GFL head (Li et al. 2020) on the same
# ResNet-18 + FPN as the RetinaNet configs, with ATSS assignment, QualityFocalLoss,
# DistributionFocalLoss and GIoULoss.
_base_ = [
    '../_base_/models/retinanet_r18_fpn.py',
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    type='GFL',
    neck=dict(add_extra_convs='on_output'),
    bbox_head=dict(
        _delete_=True,
        type='GFLHead',
        num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator', ratios=[1.0], octave_base_scale=2, scales_per_octave=1,
            strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(
            type='mmdet_losses.QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='mmdet_losses.DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='mmdet_losses.GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
