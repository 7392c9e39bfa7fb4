"""Helpers of the detector integration tests (tests/test_integration*.py): the tools on the
path, a tiny shapes dataset, and configs shrunk to it (tiny images, 2 images a batch, no
worker processes)."""
import glob
import importlib.util
import itertools
import json
import math
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')
for path in (TOOLS, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

import make_shapes  # noqa: E402
from mm_compat import patch_checkpoint_loading  # noqa: E402

patch_checkpoint_loading()  # for --resume / load_from under torch >= 2.6

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'retinanet', '*.py')) +
                 glob.glob(osp.join(ROOT, 'configs', 'faster_rcnn', '*.py')) +
                 glob.glob(osp.join(ROOT, 'configs', 'centernet', '*.py')))
RETINANET = osp.join(ROOT, 'configs', 'retinanet', 'retinanet_r18_fpn_focal-ciou_shapes.py')
FASTER_RCNN_DIOU_NMS = osp.join(ROOT, 'configs', 'faster_rcnn',
                                'faster-rcnn_r18_fpn_ce-giou-diounms_shapes.py')
TINY_SIZE = 64
TINY = dict(num_train=4, num_val=2, img_size=TINY_SIZE, seed=0)
_RUN_IDS = itertools.count()


def load_tool(name):
    """tools/<name>.py as a module (by path: tools/test.py would clash with the stdlib's
    ``test`` package)."""
    key = f'_tools_{name}'
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, osp.join(TOOLS, f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def make_tiny_data(root):
    make_shapes.make_shapes(str(root), verbose=False, **TINY)
    return str(root)


def _set_resize(pipeline, size):
    for step in pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (size, size)


def shrink(cfg, data_root, work_dir, epochs=1):
    """Point ``cfg`` at the tiny dataset under ``data_root``: tiny images, batches of 2 (so an
    epoch of the 4 training images is 2 iterations), no workers, a log line per iteration."""
    root = str(data_root).rstrip('/') + '/'
    cfg.shapes_generator = None
    cfg.work_dir = str(work_dir)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = root
        _set_resize(loader.dataset.pipeline, TINY_SIZE)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = root + 'annotations/instances_val.json'
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor.window_size = 1
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    # a visualizer of its own: runners in one process otherwise share the first one (mmengine
    # keeps instances by name), and with it the first run's log folder
    cfg.visualizer.name = f'visualizer_{next(_RUN_IDS)}'
    return cfg


def read_train_scalars(work_dir):
    """The training records (one per iteration with logger interval 1) of the newest run."""
    files = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if 'loss' in r]


def assert_finite_losses(records):
    assert records, 'no training loss was logged'
    for record in records:
        for key, value in record.items():
            if key.startswith('loss'):
                assert math.isfinite(value), f'{key} = {value} at step {record["step"]}'


# glibc fills every fresh malloc block with 0x7f bytes (~3.4e38 as a float32 or bfloat16): a
# kernel that reads memory it never wrote then gives inf/NaN every time instead of now and then
POISON_MALLOC = {'MALLOC_PERTURB_': '128'}

_TRAIN_IN_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from _integration_utils import load_tool, shrink
train = load_tool('train')
args = train.parse_args([{config!r}, '--work-dir', {work_dir!r}, *{extra_args!r}])
runner = train.run_train(shrink(train.build_config(args), {data_root!r}, {work_dir!r}, {epochs!r}))
print('OPTIM_WRAPPER=' + type(runner.optim_wrapper).__name__, flush=True)
"""


def train_in_subprocess(config, data_root, work_dir, epochs, extra_args=(), env=None,
                        timeout=300):
    """tools/train.py on the tiny data (as ``shrink`` sets it) in a fresh interpreter, with
    ``env`` added to the environment (``POISON_MALLOC`` must be set before the process starts:
    glibc reads it once). Returns the name of the optimizer wrapper the runner used."""
    code = _TRAIN_IN_CHILD.format(tests=osp.join(ROOT, 'tests'), config=config,
                                  work_dir=str(work_dir), extra_args=list(extra_args),
                                  data_root=str(data_root), epochs=epochs)
    done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert done.returncode == 0, f'training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
    names = [line.split('=', 1)[1] for line in done.stdout.splitlines()
             if line.startswith('OPTIM_WRAPPER=')]
    assert names, f'no OPTIM_WRAPPER line in:\n{done.stdout[-3000:]}'
    return names[-1]


def assert_finite_grad_norms(records):
    """Every training step logged a finite gradient norm (mmengine logs ``grad_norm`` when the
    optimizer wrapper clips gradients)."""
    assert records, 'no training step was logged'
    for record in records:
        assert 'grad_norm' in record, f'no grad_norm at step {record["step"]}: {record}'
        value = record['grad_norm']
        assert math.isfinite(value) and value > 0, f'grad_norm = {value} at step {record["step"]}'


def assert_finite_checkpoint(path):
    """Every floating-point tensor of the checkpoint's model state is finite; returns the
    number of tensors checked."""
    import torch
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    tensors = {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}
    assert tensors, f'no floating-point tensor in {path}'
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    assert not bad, f'{len(bad)} of {len(tensors)} tensors of {path} hold inf/NaN: {bad[:5]}'
    return len(tensors)
