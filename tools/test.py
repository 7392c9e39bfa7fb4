"""Evaluate a trained detector with mmengine's Runner and print its metrics.

    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG CHECKPOINT --work-dir work_dirs/eval --cfg-options ...

The metrics (bbox mAP, AP50, AP75, ... for COCO-style evaluation) are printed one per line and
written to ``<work-dir>/metrics.json``.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from train import (finish_distributed, load_config, prepare_runner,  # noqa: E402
                   setup_distributed_cpu)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the logs and metrics.json go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_evaluator.classwise=True')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    setup_distributed_cpu(cfg, args.launcher)
    return cfg


def run_test(cfg):
    """Build the runner, evaluate, print the metrics and write them to work_dir/metrics.json."""
    runner = prepare_runner(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        metrics = {k: float(v) if isinstance(v, (int, float)) else v for k, v in metrics.items()}
        os.makedirs(cfg.work_dir, exist_ok=True)
        with open(osp.join(cfg.work_dir, 'metrics.json'), 'w') as f:
            json.dump(metrics, f, indent=1)
        for key, value in metrics.items():
            print(f'[test] {key}: {value}', flush=True)
    return metrics


def main(argv=None):
    metrics = run_test(build_config(parse_args(argv)))
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
