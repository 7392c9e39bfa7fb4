"""Train the same detector with several bounding-box losses, same budget and seeds, and compare
them with error bars.

Each loss trains the base config (default: the main job's RetinaNet-R18) with only
``model.bbox_head.loss_bbox`` (and ``reg_decoded_bbox``) changed, as its own
``tools/train.py`` process per seed, validating after every ``--val-interval`` epochs. Writes

* a Markdown table to ``--out-md`` (default ``work_dirs/compare_losses/compare_losses.md``):
  per loss the mean bbox mAP, AP50 and AP75 over the seeds with the 95% confidence interval
  of the mean mAP (Student's t), and the paired difference to the best loss (same seed, so
  the same initialisation and data order) with its 95% interval: a difference whose interval
  excludes 0 is significant at the 5% level;
* a plot of the mean mAP with those intervals to ``--out-png``
  (default ``work_dirs/compare_losses/compare_losses.png``).

    python tools/compare_losses.py --seeds 0 1 2                   # every default loss
    python tools/compare_losses.py --losses SmoothL1 GIoU CIoU --epochs 2 --num-train 200

A loss that ``mmdet_losses`` does not (yet) provide is skipped with a note. With one seed
there is no interval: the table says so.
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
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='one training run per loss and seed (default: 0 1 2)')
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--out-md', help='default: WORK_DIR/compare_losses.md')
    parser.add_argument('--out-png', help='default: WORK_DIR/compare_losses.png')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='more tools/train.py --cfg-options for every run')
    args = parser.parse_args(argv)
    args.out_md = args.out_md or osp.join(args.work_dir, 'compare_losses.md')
    args.out_png = args.out_png or osp.join(args.work_dir, 'compare_losses.png')
    return args


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


def train_one(name, config, run_dir, args, seed):
    options = [f'randomness.seed={seed}', f'train_cfg.val_interval={args.val_interval}',
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
    row = dict(name=name, seed=seed, seconds=seconds, ok=status.returncode == 0,
               loss=train[-1]['loss'] if train else math.nan,
               curve=[(r['step'], r['coco/bbox_mAP']) for r in val])
    last = val[-1] if val else {}
    for key in ('mAP', 'mAP_50', 'mAP_75'):
        row[key] = last.get(f'coco/bbox_{key}', math.nan)
    status_text = 'ok' if row['ok'] else f'FAILED (see {run_dir}/train_stdout.log)'
    print(f'[compare] {name} seed {seed}: {status_text}, mAP {row["mAP"]:.3f}, '
          f'{seconds:.0f} s', flush=True)
    return row


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (95% two-sided)."""
    from scipy import stats
    return float(stats.t.ppf(0.975, df))


def mean_interval(values):
    """(mean, half-width of its 95% confidence interval; NaN for fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile(n - 1) * std / math.sqrt(n)


def summarise(rows):
    """Per loss: mean mAP/AP50/AP75 over its seeds, the 95% interval of the mean mAP, and the
    paired (same seed) difference to the best loss with its 95% interval, best first.
    Failed runs are left out."""
    by_loss = {}
    for r in rows:
        if r['ok'] and not math.isnan(r['mAP']):
            by_loss.setdefault(r['name'], {})[r['seed']] = r
    summary = []
    for name, runs in by_loss.items():
        mean, half = mean_interval([r['mAP'] for r in runs.values()])
        summary.append(dict(
            name=name, runs=runs, n=len(runs), mAP=mean, ci=half,
            mAP_50=sum(r['mAP_50'] for r in runs.values()) / len(runs),
            mAP_75=sum(r['mAP_75'] for r in runs.values()) / len(runs)))
    summary.sort(key=lambda s: -s['mAP'])
    if summary:
        best = summary[0]
        for s in summary:
            seeds = sorted(set(s['runs']) & set(best['runs']))
            diffs = [s['runs'][k]['mAP'] - best['runs'][k]['mAP'] for k in seeds]
            s['diff'], s['diff_ci'] = mean_interval(diffs) if diffs else (math.nan, math.nan)
            s['significant'] = (s is not best and not math.isnan(s['diff_ci'])
                                and abs(s['diff']) > s['diff_ci'])
    return summary


def format_table(summary):
    lines = ['| bbox loss | seeds | mAP (mean ± 95% CI) | AP50 | AP75 | vs best (paired, 95% CI) |'
             ' significant |',
             '| --- | ---: | ---: | ---: | ---: | ---: | :---: |']
    for i, s in enumerate(summary):
        ci = 'n/a' if math.isnan(s['ci']) else f'{s["ci"]:.3f}'
        if i == 0:
            versus, flag = 'best', ''
        elif math.isnan(s['diff_ci']):
            versus, flag = f'{s["diff"]:+.3f}', 'n/a'
        else:
            versus = f'{s["diff"]:+.3f} ± {s["diff_ci"]:.3f}'
            flag = 'yes' if s['significant'] else 'no'
        lines.append(f'| {s["name"]} | {s["n"]} | {s["mAP"]:.3f} ± {ci} | {s["mAP_50"]:.3f} | '
                     f'{s["mAP_75"]:.3f} | {versus} | {flag} |')
    return lines


def write_table(rows, skipped, args, path):
    summary = summarise(rows)
    lines = format_table(summary)
    runs = ['| bbox loss | seed | mAP | AP50 | AP75 | final loss | time (s) |',
            '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for r in rows:
        note = '' if r['ok'] else ' (failed)'
        runs.append(f'| {r["name"]}{note} | {r["seed"]} | {r["mAP"]:.3f} | {r["mAP_50"]:.3f} | '
                    f'{r["mAP_75"]:.3f} | {r["loss"]:.4f} | {r["seconds"]:.0f} |')
    command = 'python tools/compare_losses.py ' + ' '.join(sys.argv[1:])
    epochs = 'the config\'s' if args.epochs is None else args.epochs
    images = 'all' if args.num_train is None else args.num_train
    significant = [s['name'] for s in summary if s.get('significant')]
    verdict = (f'Significantly below the best ({summary[0]["name"]}) at the 5% level: '
               f'{", ".join(significant)}; every other difference is within the seeds\' noise.'
               if summary and significant else
               'No difference to the best loss is significant at the 5% level.')
    text = ['# Bounding-box loss comparison', '',
            f'Base config `{args.config}`, only the bbox loss changed; seeds '
            f'{", ".join(map(str, args.seeds))}; {epochs} epochs on {images} training images; '
            'mAP on the validation split after the last epoch.', '',
            'The interval of a mean is its 95% confidence interval (Student\'s t over the seeds). '
            '"vs best" is the mean of the per-seed differences to the best loss (same seed: the '
            'same initialisation and data order), with its 95% interval; the difference is '
            'significant when that interval excludes 0.', '',
            f'Command: `{command.strip()}`', '', *lines, '', verdict, '',
            '## Every run', '',
            'Final loss: the total training loss (focal + box) of the last logged window. '
            'The box losses have different scales (SmoothL1 on encoded deltas with weight 1, '
            'the IoU losses on boxes with weight 2), so it shows each run converging, not '
            'which loss is better.', '', *runs, '']
    if skipped:
        text += [f'Skipped (not in mmdet_losses when this ran): {", ".join(skipped)}.', '']
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(text))
    print('\n'.join(lines + ['', verdict]), flush=True)
    return summary


def write_plot(summary, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    names = [s['name'] for s in summary]
    means = [s['mAP'] for s in summary]
    errors = [0.0 if math.isnan(s['ci']) else s['ci'] for s in summary]
    ax.bar(names, means, yerr=errors, capsize=4, color='tab:blue', alpha=0.8)
    for i, s in enumerate(summary):
        seeds = [r['mAP'] for r in s['runs'].values()]
        ax.plot([i] * len(seeds), seeds, 'k.', markersize=4)
    ax.set_ylabel('validation bbox mAP (mean, 95% CI; dots: seeds)')
    ax.set_title('Same detector and budget: bbox loss only')
    ax.grid(alpha=0.3, axis='y')
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
        config = write_variant_config(args.config, name, args.work_dir, args.epochs)
        for seed in args.seeds:
            run_dir = osp.join(args.work_dir, name, f'seed{seed}')
            os.makedirs(run_dir, exist_ok=True)
            rows.append(train_one(name, config, run_dir, args, seed))
    summary = write_table(rows, skipped, args, args.out_md)
    write_plot(summary, args.out_png)
    print(f'[compare] wrote {args.out_md} and {args.out_png}', flush=True)
    return rows


if __name__ == '__main__':
    main()
