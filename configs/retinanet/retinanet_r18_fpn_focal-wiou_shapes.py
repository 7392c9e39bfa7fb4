# RetinaNet-R18: FocalLoss + Wise-IoU v3 (Tong et al. 2023: dynamic focusing by the outlier
# degree, against a running mean of the IoU loss kept in a buffer).
_base_ = './retinanet_r18_fpn_focal-ciou_shapes.py'

model = dict(
    bbox_head=dict(
        loss_bbox=dict(
            _delete_=True, type='mmdet_losses.WIoULoss', version='v3', alpha=1.9, delta=3,
            loss_weight=2.0)))
