# Faster R-CNN-R18 with this package's losses: cross-entropy (sigmoid in the RPN, softmax in
# the RoI head) and GIoULoss on decoded boxes in both stages (reg_decoded_bbox=True): smooth L1
# replaced by an IoU loss.
_base_ = [
    '../_base_/models/faster_rcnn_r18_fpn.py',
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    rpn_head=dict(
        reg_decoded_bbox=True,
        loss_cls=dict(type='mmdet_losses.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='mmdet_losses.GIoULoss', loss_weight=2.0)),
    roi_head=dict(
        bbox_head=dict(
            num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
            reg_decoded_bbox=True,
            loss_cls=dict(
                type='mmdet_losses.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(_delete_=True, type='mmdet_losses.GIoULoss', loss_weight=10.0))))
