# RetinaNet with a ResNet-18 trained from scratch (no pretrained weights: init_cfg=None, no
# frozen stages, BN statistics updated), sized for small images on a 2-core CPU: the ResNet-18
# at half width (base_channels=32), a 64-channel FPN and a head of two 64-channel convs per
# branch with GroupNorm (GN lets a head trained from scratch converge in a short schedule).
# Anchors start at 16 px on stride 8 (mmdet's COCO setting starts at 32 px). The losses are
# set by each config in configs/retinanet/.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=dict(octave_base_scale=2)))
