# Faster R-CNN-R18, CE + GIoU, with DIoU-NMS (this package's diou_nms) for the final boxes:
# a box is suppressed where IoU - (rho^2 / c^2) > iou_threshold, so overlapping objects with
# distinct centres survive.
_base_ = './faster-rcnn_r18_fpn_ce-giou_shapes.py'

model = dict(test_cfg=dict(rcnn=dict(nms=dict(type='diou_nms', iou_threshold=0.5))))
