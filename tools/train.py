"""Train a detector from a config with mmengine's Runner.

    python tools/train.py configs/retinanet/retinanet_r18_fpn_focal-ciou_shapes.py
    python tools/train.py CONFIG --work-dir work_dirs/run --cfg-options train_cfg.max_epochs=2
    python tools/train.py CONFIG --resume            # continue from the last checkpoint
    python tools/train.py CONFIG --strict            # stop if the config check finds a problem
    bash tools/dist_train.sh CONFIG 2                # 2 processes (gloo on a CPU)

On a machine without CUDA, distributed runs use gloo and plain DDP, and ``--amp`` runs the
forward pass under bfloat16 autocast and the backward pass without oneDNN (mmengine's
AmpOptimWrapper needs a GPU; see CPUAmpOptimWrapper). The bundled
shapes dataset is generated first when the config names it (``shapes_generator``) and it is
missing.
"""
import argparse
import contextlib
import datetime
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS, RUNNERS
from mmengine.runner import Runner

TOOLS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TOOLS)
# the repository root too, so that `custom_imports=['mmdet_losses']` works from a checkout
# that is not pip-installed
if osp.dirname(TOOLS) not in sys.path:
    sys.path.insert(1, osp.dirname(TOOLS))
from make_shapes import ensure_shapes  # noqa: E402
from mm_compat import patch_checkpoint_loading  # noqa: E402

patch_checkpoint_loading()  # mmengine's checkpoints under torch >= 2.6 (--resume, load_from)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', help='mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_epochs=2 '
                        'optim_wrapper.optimizer.lr=0.01')
    parser.add_argument('--strict', action='store_true',
                        help='stop before training when the config check (python -m '
                        'mmdet_losses check) finds an error or a warning; without it they '
                        'are printed and training goes on')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


@MODEL_WRAPPERS.register_module(force=True)
class CPUAwareDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper, without ``device_ids`` for a module on the CPU (DDP refuses
    device ids there; mmengine's Runner always passes them)."""

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


@contextlib.contextmanager
def onednn_disabled():
    """oneDNN (mkldnn) off inside the block, restored after; only the ``enabled`` flag is
    touched (``torch.backends.mkldnn.flags`` would also reset the TF32 and precision ones)."""
    previous = torch.backends.mkldnn.set_flags(False, None, None, None)[0]
    try:
        yield
    finally:
        torch.backends.mkldnn.set_flags(previous, None, None, None)


@OPTIM_WRAPPERS.register_module(force=True)
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on a CPU: forward under bfloat16 autocast. bfloat16 has float32's
    range, so no loss scaling is needed.

    The backward pass runs with oneDNN disabled: torch 2.13's bundled oneDNN computes the
    bfloat16 convolution weight gradient from uninitialised memory when the input is 1 pixel
    wide (3x3 kernel, stride 2, padding 1: RetinaNet's P6->P7 conv on small images), which
    gives inf/NaN gradients and weights (tests/test_upstream_onednn.py documents it and fails
    once torch is fixed). The forward pass keeps oneDNN; ATen's own kernels do the backward.
    """

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield

    def backward(self, loss, **kwargs):
        with onednn_disabled():
            super().backward(loss, **kwargs)


def prepare_data(cfg):
    """Generate the bundled shapes dataset the config names, if it is not there yet."""
    generator = cfg.get('shapes_generator')
    if generator:
        ensure_shapes(**generator)


def setup_distributed_cpu(cfg, launcher):
    """On a machine without CUDA, start the process group with gloo ourselves (mmengine's
    init_dist calls torch.cuda.set_device) and use DDP without device ids."""
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        timeout = cfg.env_cfg.dist_cfg.get('timeout')
        kwargs = {}
        if timeout is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        cfg.model_wrapper_cfg = dict(
            type='CPUAwareDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def load_config(args):
    """The config with the options train.py and test.py share (--launcher, --cfg-options,
    --work-dir: by default work_dirs/<config name>)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_config(args):
    cfg = load_config(args)

    if args.amp:
        wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
            print('[train] --amp: the config already trains in mixed precision', flush=True)
        elif torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:
            print('[train] --amp on a CPU: bfloat16 autocast', flush=True)
            cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                             'config, got none')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    setup_distributed_cpu(cfg, args.launcher)
    return cfg


def build_runner(cfg):
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def prepare_runner(cfg):
    """Generate the data if needed (rank 0; the others wait), then build the runner."""
    if int(os.environ.get('RANK', '0')) == 0:
        prepare_data(cfg)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return build_runner(cfg)


def run_train(cfg):
    runner = prepare_runner(cfg)
    runner.train()
    return runner


def finish_distributed():
    """Tear the process group down before exit: a gloo group left to the interpreter's exit
    can abort a rank ('terminate called without an active exception') after a finished run."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def check_config(cfg, strict=False):
    """Run mmdet_losses' config check (mistakes that train silently: an IoU loss on encoded
    deltas, a sigmoid loss without use_sigmoid, a misspelt type, ...) and print what it finds;
    with ``strict``, an error or a warning exits with status 1 before anything is built."""
    from mmdet_losses.config_check import check_config as find_problems
    from mmdet_losses.config_check import exit_status
    try:
        problems = find_problems(cfg)
    except Exception as error:  # noqa: BLE001 (a failing check must not stop training)
        if strict:
            raise
        print(f'[check] the config check failed, skipped: {type(error).__name__}: {error}',
              flush=True)
        return []
    if problems and int(os.environ.get('RANK', '0')) == 0:
        for problem in problems:
            print(f'[check] {problem}', flush=True)
    if strict and exit_status(problems, strict=True):
        raise SystemExit('[check] --strict: the config check found the problems above; '
                         'training not started')
    return problems


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    check_config(cfg, strict=args.strict)
    runner = run_train(cfg)
    finish_distributed()
    return runner


if __name__ == '__main__':
    main()
