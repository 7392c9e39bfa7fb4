# Faster R-CNN with a ResNet-18 trained from scratch (init_cfg=None, no frozen stages, BN
# statistics updated), sized for small images on a 2-core CPU: the ResNet-18 at half width
# (base_channels=32), a 64-channel FPN, RPN anchors from 16 px on stride 4, and fewer proposals
# and RoI samples than mmdet's COCO setting. The losses are set by each config in
# configs/faster_rcnn/.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
