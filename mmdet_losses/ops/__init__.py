"""DIoU-NMS and the optional compiled CPU kernels (``mmdet_losses/ops/csrc/<name>/``, built at
set-up). Every kernel has a pure-PyTorch path computing the same maths, which is what runs on a
GPU or where the kernels are not built. Importing this package also registers ``'diou_nms'``
as an NMS type of mmcv's ``batched_nms`` (see :mod:`mmdet_losses.ops.nms`)."""
from .nms import batched_diou_nms, diou_nms

__all__ = ['diou_nms', 'batched_diou_nms']
