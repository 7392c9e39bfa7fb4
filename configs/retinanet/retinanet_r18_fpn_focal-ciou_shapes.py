# THE DEFAULT CONFIG (tools/main.sh): RetinaNet-R18 on the bundled shapes with this package's
# FocalLoss for classification and CIoULoss on decoded boxes (reg_decoded_bbox=True).
_base_ = [
    '../_base_/models/retinanet_r18_fpn.py',
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
        reg_decoded_bbox=True,
        loss_cls=dict(
            type='mmdet_losses.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='mmdet_losses.CIoULoss', loss_weight=2.0)))
