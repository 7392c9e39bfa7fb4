"""Generate the bundled detection dataset: coloured shapes on noisy backgrounds, in COCO format.

Three classes (``rectangle``, ``ellipse``, ``triangle``), each drawn in any of several
colours and sizes, so the class is the shape and never the colour. Some objects overlap
(at most ``MAX_OVERLAP`` of the smaller box), about 15 % are tiny (a few pixels).
Boxes are the tight extent of the drawn pixels, as ``[x, y, w, h]`` in COCO's continuous
pixel coordinates; ``area`` is the number of drawn pixels; ``segmentation`` is the object's
drawn shape, pixel-exact, as a COCO run-length encoding (``{'size': [h, w], 'counts': str}``,
pycocotools' compressed form): the whole shape, as its box and area are, also where a later
object covers part of it.

Deterministic: image ``i`` of a split is drawn from its own generator seeded with
``(seed, split, i)``, so a given image does not depend on how many others are asked for,
and the same arguments give byte-identical files.

Layout written under ``--out`` (default ``data/shapes``)::

    train/000000.png ...      val/000000.png ...
    annotations/instances_train.json   annotations/instances_val.json

Usage::

    python tools/make_shapes.py                     # the defaults the configs expect
    python tools/make_shapes.py --out /tmp/s --num-train 8 --num-val 4 --img-size 64
"""
import argparse
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np

CLASSES = ('rectangle', 'ellipse', 'triangle')
# BGR (cv2 writes BGR); saturated so that every colour stands out from the grey background
COLOURS = ((40, 40, 220), (40, 200, 40), (220, 80, 30), (30, 210, 230), (200, 50, 200),
           (220, 220, 40), (245, 245, 245), (20, 20, 20))
SPLITS = {'train': 0, 'val': 1}
MAX_OVERLAP = 0.35  # largest intersection over the smaller box between two objects
TINY_FRACTION = 0.15

DEFAULTS = dict(num_train=1000, num_val=100, img_size=128, seed=0)


def _shape_mask(rng, kind, size, img_size):
    """A uint8 mask (img_size x img_size) with one shape of class index ``kind`` of about
    ``size`` pixels across, placed at random; None if it came out empty."""
    mask = np.zeros((img_size, img_size), np.uint8)
    w = max(2, int(round(size * rng.uniform(0.6, 1.4))))
    h = max(2, int(round(size * rng.uniform(0.6, 1.4))))
    w, h = min(w, img_size - 1), min(h, img_size - 1)
    x0 = int(rng.integers(0, img_size - w))
    y0 = int(rng.integers(0, img_size - h))
    if kind == 0:
        cv2.rectangle(mask, (x0, y0), (x0 + w - 1, y0 + h - 1), 255, thickness=-1)
    elif kind == 1:
        centre = (x0 + w // 2, y0 + h // 2)
        cv2.ellipse(mask, centre, (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255,
                    thickness=-1)
    else:
        apex = x0 + int(rng.integers(0, w))
        pts = np.array([[apex, y0], [x0, y0 + h - 1], [x0 + w - 1, y0 + h - 1]], np.int32)
        if rng.random() < 0.5:  # point down as often as up
            pts[:, 1] = 2 * y0 + h - 1 - pts[:, 1]
        cv2.fillPoly(mask, [pts], 255)
    return mask if mask.any() else None


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return [x1, y1, x2, y2]


def _overlap(a, b):
    """Intersection of boxes a and b (xyxy) over the smaller one's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller


def draw_image(seed, split, index, img_size):
    """One image (H, W, 3 uint8 BGR) and its objects as (class index, xyxy box, area)."""
    img, objects, _ = draw_image_with_masks(seed, split, index, img_size)
    return img, objects


def draw_image_with_masks(seed, split, index, img_size):
    """:func:`draw_image` and the shape mask of each object (uint8 H x W, 255 inside), in
    the objects' order."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    base = rng.integers(70, 190, size=3)
    img = np.clip(base + rng.normal(0, 12, (img_size, img_size, 3)), 0, 255).astype(np.uint8)
    num_objects = int(rng.integers(1, 7))
    tiny = rng.random(num_objects) < TINY_FRACTION
    # tiny objects last, so that nothing covers them
    order = np.argsort(tiny, kind='stable')
    objects, masks = [], []
    for is_tiny in tiny[order]:
        for _ in range(20):  # a few tries to place it without too much overlap
            kind = int(rng.integers(0, len(CLASSES)))
            size = rng.uniform(4, 9) if is_tiny else rng.uniform(0.1, 0.45) * img_size
            mask = _shape_mask(rng, kind, size, img_size)
            if mask is None:
                continue
            box = _tight_box(mask)
            if all(_overlap(box, other[1]) <= MAX_OVERLAP for other in objects):
                colour = COLOURS[int(rng.integers(0, len(COLOURS)))]
                img[mask > 0] = colour
                objects.append((kind, box, int(np.count_nonzero(mask))))
                masks.append(mask)
                break
    return img, objects, masks


def mask_to_rle(mask):
    """A binary mask (H x W) as COCO's compressed run-length encoding, JSON-ready."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask > 0, dtype=np.uint8))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def make_split(out, split, num_images, img_size, seed):
    """Write the images of ``split`` and return its COCO annotation dict."""
    os.makedirs(osp.join(out, split), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        img, objects, masks = draw_image_with_masks(seed, split, index, img_size)
        file_name = f'{index:06d}.png'
        cv2.imwrite(osp.join(out, split, file_name), img)
        images.append(dict(id=index, file_name=file_name, width=img_size, height=img_size))
        for (kind, (x1, y1, x2, y2), area), mask in zip(objects, masks):
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index, category_id=kind + 1,
                bbox=[x1, y1, x2 - x1, y2 - y1], area=area, iscrowd=0,
                segmentation=mask_to_rle(mask)))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    return dict(info=dict(description='mmdet_losses bundled shapes', seed=seed),
                images=images, annotations=annotations, categories=categories)


def ann_file(out, split):
    return osp.join(out, 'annotations', f'instances_{split}.json')


def make_shapes(out='data/shapes', num_train=DEFAULTS['num_train'],
                num_val=DEFAULTS['num_val'], img_size=DEFAULTS['img_size'],
                seed=DEFAULTS['seed'], verbose=True):
    """Generate both splits under ``out`` (overwriting what is there)."""
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    for split, num in (('train', num_train), ('val', num_val)):
        coco = make_split(out, split, num, img_size, seed)
        # the annotation file is written last: its presence means the split is complete
        with open(ann_file(out, split), 'w') as f:
            json.dump(coco, f)
        if verbose:
            print(f'[make_shapes] {split}: {num} images, {len(coco["annotations"])} objects '
                  f'({img_size}x{img_size}) -> {osp.join(out, split)}', flush=True)


def _has_masks(out):
    """Whether the training annotations carry instance masks (files written before the
    generator wrote them have boxes only)."""
    with open(ann_file(out, 'train')) as f:
        annotations = json.load(f)['annotations']
    return all('segmentation' in ann for ann in annotations[:1])


def ensure_shapes(out='data/shapes', **kwargs):
    """Generate the dataset under ``out`` unless both annotation files are already there,
    with instance masks (an older dataset without them is generated again: the images and
    boxes come out byte-identical)."""
    if all(osp.isfile(ann_file(out, split)) for split in SPLITS) and _has_masks(out):
        return False
    make_shapes(out, **kwargs)
    return True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/shapes', help='output folder')
    parser.add_argument('--num-train', type=int, default=DEFAULTS['num_train'])
    parser.add_argument('--num-val', type=int, default=DEFAULTS['num_val'])
    parser.add_argument('--img-size', type=int, default=DEFAULTS['img_size'],
                        help='side of the square images, in pixels')
    parser.add_argument('--seed', type=int, default=DEFAULTS['seed'])
    parser.add_argument('--if-missing', action='store_true',
                        help='do nothing when the annotation files already exist')
    parser.add_argument('--config', help='take every argument from this config\'s '
                        '`shapes_generator` (what tools/train.py generates)')
    return parser.parse_args(argv)


def generator_args_from_config(path):
    """The ``shapes_generator`` keyword arguments of a config (None if it has none)."""
    from mmengine.config import Config
    generator = Config.fromfile(path, import_custom_modules=False).get('shapes_generator')
    return None if generator is None else dict(generator)


def main(argv=None):
    args = parse_args(argv)
    if args.img_size < 32:
        sys.exit(f'--img-size must be at least 32, got {args.img_size}')
    kwargs = dict(out=args.out, num_train=args.num_train, num_val=args.num_val,
                  img_size=args.img_size, seed=args.seed)
    if args.config:
        kwargs = generator_args_from_config(args.config)
        if kwargs is None:
            print(f'[make_shapes] {args.config} names no shapes dataset: nothing to do')
            return
    if args.if_missing:
        if not ensure_shapes(**kwargs):
            print(f'[make_shapes] {kwargs["out"]} already has the dataset', flush=True)
    else:
        make_shapes(**kwargs)


if __name__ == '__main__':
    main()
