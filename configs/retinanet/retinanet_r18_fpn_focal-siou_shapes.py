# RetinaNet-R18: FocalLoss + SIoULoss (Gevorgyan 2022: angle, distance and shape costs).
_base_ = './retinanet_r18_fpn_focal-ciou_shapes.py'

model = dict(
    bbox_head=dict(
        loss_bbox=dict(_delete_=True, type='mmdet_losses.SIoULoss', theta=4, loss_weight=2.0)))
