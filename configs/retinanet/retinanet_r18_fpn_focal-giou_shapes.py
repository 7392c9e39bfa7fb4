# RetinaNet-R18: FocalLoss + GIoULoss on decoded boxes.
_base_ = './retinanet_r18_fpn_focal-ciou_shapes.py'

model = dict(
    bbox_head=dict(loss_bbox=dict(_delete_=True, type='mmdet_losses.GIoULoss', loss_weight=2.0)))
