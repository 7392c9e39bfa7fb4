"""Train the same detector with several bounding-box losses, same budget and seed, and compare.

Each loss trains the base config (default: the main job's RetinaNet-R18) with only
``model.bbox_head.loss_bbox`` (and ``reg_decoded_bbox``) changed, as its own
``tools/train.py`` process, validating after every ``--val-interval`` epochs. Writes

* a Markdown table (bbox mAP, AP50, AP75 on the validation split, the last logged training
  loss, the training wall time) to ``--out-md`` (default ``docs/compare_losses.md``);
* a plot of the validation mAP per epoch for every loss to ``--out-png``
  (default ``docs/figures/compare_losses.png``).

    python tools/compare_losses.py                                  # every available loss
    python tools/compare_losses.py --losses SmoothL1 GIoU CIoU --epochs 2 --num-train 200

A loss that ``mmdet_losses`` does not (yet) provide is skipped with a note.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = 'configs/retinanet/retinanet_r18_fpn_focal-ciou_shapes.py'

# name -> (loss_bbox, reg_decoded_bbox). Delta losses keep mmdet's RetinaNet weight (1.0) on
# encoded deltas; the IoU losses act on decoded boxes with mmdet's IoU-loss weight (2.0).
LOSSES = {
    'SmoothL1': (dict(type='mmdet_losses.SmoothL1Loss', beta=0.11, loss_weight=1.0), False),
    'L1': (dict(type='mmdet_losses.L1Loss', loss_weight=1.0), False),
    'BalancedL1': (dict(type='mmdet_losses.BalancedL1Loss', alpha=0.5, gamma=1.5, beta=0.11,
                        loss_weight=1.0), False),
    'IoU': (dict(type='mmdet_losses.IoULoss', mode='linear', loss_weight=2.0), True),
    'GIoU': (dict(type='mmdet_losses.GIoULoss', loss_weight=2.0), True),
    'DIoU': (dict(type='mmdet_losses.DIoULoss', loss_weight=2.0), True),
    'CIoU': (dict(type='mmdet_losses.CIoULoss', loss_weight=2.0), True),
    'EIoU': (dict(type='mmdet_losses.EIoULoss', loss_weight=2.0), True),
    'SIoU': (dict(type='mmdet_losses.SIoULoss', loss_weight=2.0), True),
    'WIoU': (dict(type='mmdet_losses.WIoULoss', version='v3', loss_weight=2.0), True),
}
DEFAULT_LOSSES = ['SmoothL1', 'GIoU', 'DIoU', 'CIoU', 'EIoU', 'SIoU', 'WIoU']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='the base detector config')
    parser.add_argument('--losses', nargs='+', default=DEFAULT_LOSSES, choices=sorted(LOSSES),
                        metavar='LOSS', help=f'from {sorted(LOSSES)}')
    parser.add_argument('--epochs', type=int, help='training epochs (default: the config\'s)')
    parser.add_argument('--num-train', type=int,
                        help='use the first N training images (default: all)')
    parser.add_argument('--val-interval', type=int, default=1, help='validate every N epochs')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--out-md', default='docs/compare_losses.md')
    parser.add_argument('--out-png', default='docs/figures/compare_losses.png')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='more tools/train.py --cfg-options for every run')
    return parser.parse_args(argv)


def available_losses():
    sys.path.insert(0, ROOT)
    import mmdet_losses
    return set(mmdet_losses.__all__)


def write_variant_config(base_config, name, work_dir, epochs=None):
    """A config file that inherits ``base_config`` and swaps the bbox loss for ``name``; with
    ``epochs``, the schedule is shortened to that many epochs (epoch-based schedulers end
    there and cosine decays reach their floor there)."""
    loss_bbox, decoded = LOSSES[name]
    lines = [f'_base_ = {osp.abspath(base_config)!r}',
             f'model = dict(bbox_head=dict(reg_decoded_bbox={decoded}, '
             f'loss_bbox=dict(_delete_=True, **{loss_bbox!r})))']
    if epochs is not None:
        from mmengine.config import Config
        schedulers = Config.fromfile(base_config, import_custom_modules=False).param_scheduler
        for scheduler in schedulers:
            if scheduler.get('by_epoch', True):
                scheduler['end'] = min(scheduler.get('end', epochs), epochs)
                if 'T_max' in scheduler:
                    scheduler['T_max'] = epochs
        lines += [f'train_cfg = dict(max_epochs={epochs})',
                  f'param_scheduler = {[s.to_dict() for s in schedulers]!r}']
    path = osp.join(work_dir, f'config_{name}.py')
    os.makedirs(work_dir, exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def read_scalars(run_dir):
    """Training and validation records of the newest run under ``run_dir``."""
    files = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return [], []
    train, val = [], []
    with open(files[-1]) as f:
        for line in f:
            record = json.loads(line)
            (val if 'coco/bbox_mAP' in record else train).append(record)
    return train, val


def train_one(name, config, run_dir, args):
    options = [f'randomness.seed={args.seed}', f'train_cfg.val_interval={args.val_interval}',
               *args.cfg_options]
    if args.num_train is not None:
        options.append(f'train_dataloader.dataset.indices={args.num_train}')
    command = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
               '--work-dir', run_dir, '--cfg-options', *options]
    print(f'[compare] {name}: {" ".join(command)}', flush=True)
    start = time.time()
    with open(osp.join(run_dir, 'train_stdout.log'), 'w') as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    seconds = time.time() - start
    train, val = read_scalars(run_dir)
    row = dict(name=name, seconds=seconds, ok=status.returncode == 0,
               loss=train[-1]['loss'] if train else math.nan,
               curve=[(r['step'], r['coco/bbox_mAP']) for r in val])
    last = val[-1] if val else {}
    for key in ('mAP', 'mAP_50', 'mAP_75'):
        row[key] = last.get(f'coco/bbox_{key}', math.nan)
    status_text = 'ok' if row['ok'] else f'FAILED (see {run_dir}/train_stdout.log)'
    print(f'[compare] {name}: {status_text}, mAP {row["mAP"]:.3f}, {seconds:.0f} s', flush=True)
    return row


def write_table(rows, skipped, args, path):
    lines = [
        '| bbox loss | mAP | AP50 | AP75 | final loss | time (s) |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
    ]
    for r in rows:
        note = '' if r['ok'] else ' (failed)'
        lines.append(f'| {r["name"]}{note} | {r["mAP"]:.3f} | {r["mAP_50"]:.3f} | '
                     f'{r["mAP_75"]:.3f} | {r["loss"]:.4f} | {r["seconds"]:.0f} |')
    command = 'python tools/compare_losses.py ' + ' '.join(sys.argv[1:])
    epochs = 'the config\'s' if args.epochs is None else args.epochs
    images = 'all' if args.num_train is None else args.num_train
    text = ['# Bounding-box loss comparison', '',
            f'Base config `{args.config}`, only the bbox loss changed; seed {args.seed}; '
            f'{epochs} epochs on {images} training images; '
            'mAP on the validation split after the last epoch; time is the whole training '
            'run (with its validations).', '',
            'Final loss: the total training loss (focal + box) of the last logged window. '
            'The box losses have different scales (SmoothL1 on encoded deltas with weight 1, '
            'the IoU losses on boxes with weight 2), so it shows each run converging, not '
            'which loss is better.', '',
            f'Command: `{command.strip()}`', '', *lines, '']
    if skipped:
        text += [f'Skipped (not in mmdet_losses when this ran): {", ".join(skipped)}.', '']
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(text))
    print('\n'.join(lines), flush=True)


def write_plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for r in rows:
        if r['curve']:
            epochs, maps = zip(*r['curve'])
            ax.plot(epochs, maps, marker='o', label=r['name'])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('epoch')
    ax.set_ylabel('validation bbox mAP')
    ax.set_title('Same detector, same seed: bbox loss only')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    have = available_losses()
    rows, skipped = [], []
    for name in args.losses:
        class_name = LOSSES[name][0]['type'].split('.', 1)[1]
        if class_name not in have:
            print(f'[compare] {name}: skipped, mmdet_losses has no {class_name} yet', flush=True)
            skipped.append(name)
            continue
        run_dir = osp.join(args.work_dir, name)
        os.makedirs(run_dir, exist_ok=True)
        config = write_variant_config(args.config, name, args.work_dir, args.epochs)
        rows.append(train_one(name, config, run_dir, args))
    write_table(rows, skipped, args, args.out_md)
    write_plot(rows, args.out_png)
    print(f'[compare] wrote {args.out_md} and {args.out_png}', flush=True)
    return rows


if __name__ == '__main__':
    main()
