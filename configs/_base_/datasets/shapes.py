# The dataset every config in configs/ trains on: the bundled shapes (tools/make_shapes.py),
# generated into data/shapes/ by tools/train.py, tools/test.py and tools/main.sh when missing.
#
# To train on COCO instead, this is the one file to change (docs/detection.md):
#   num_classes = 80; metainfo = None; data_root = 'data/coco/';
#   ann files 'annotations/instances_{train,val}2017.json', image folders 'train2017/' and
#   'val2017/', img_scale = (1333, 800), and delete `shapes_generator`.
dataset_type = 'CocoDataset'
data_root = 'data/shapes/'
num_classes = 3
metainfo = dict(
    classes=('rectangle', 'ellipse', 'triangle'),
    palette=[(220, 20, 60), (0, 128, 255), (0, 170, 0)])
img_scale = (128, 128)
backend_args = None

# Read by tools/train.py and tools/test.py: generate the data with these arguments when
# data_root has no annotations yet (the keyword arguments of tools/make_shapes.py).
shapes_generator = dict(out=data_root, num_train=1000, num_val=100, img_size=128, seed=0)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=16),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
