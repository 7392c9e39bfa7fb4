# Faster R-CNN-R18 with SeesawLoss in the RoI head (Wang et al., CVPR 2021), as mmdet's
# configs/seesaw_loss/ set it: a cosine classifier (NormedLinear, temperature 20) and the
# Seesaw classifier interface (C + 2 outputs: classes, then objectness). The RPN keeps sigmoid
# cross-entropy with an L1 box loss; the RoI box loss is GIoU on decoded boxes.
_base_ = [
    '../_base_/models/faster_rcnn_r18_fpn.py',
    '../_base_/datasets/shapes.py',
    '../_base_/schedules/schedule_shapes.py',
]
custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)

model = dict(
    rpn_head=dict(
        loss_cls=dict(type='mmdet_losses.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='mmdet_losses.L1Loss', loss_weight=1.0)),
    roi_head=dict(
        bbox_head=dict(
            num_classes=_base_.num_classes,  # noqa: F821 (mmengine defines _base_ here)
            reg_decoded_bbox=True,
            cls_predictor_cfg=dict(type='NormedLinear', tempearture=20),
            loss_cls=dict(
                _delete_=True, type='mmdet_losses.SeesawLoss', p=0.8, q=2.0,
                num_classes=_base_.num_classes, loss_weight=1.0),  # noqa: F821
            loss_bbox=dict(_delete_=True, type='mmdet_losses.GIoULoss', loss_weight=10.0))))
