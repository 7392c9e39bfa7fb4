"""mmdet_losses.compat: mmengine's own checkpoints under torch >= 2.6, opted into from Python
or from a config's custom_imports (which is how mmdet's stock tools/test.py gets it)."""
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint, load_checkpoint,
                                        load_from_local)

from mmdet_losses import compat

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WEIGHTS_ONLY_DEFAULT = tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6)


def save_runner_style_checkpoint(path):
    """A checkpoint as mmengine's Runner.save_checkpoint writes it: weights, meta and the
    message hub's state (HistoryBuffer objects, numpy values)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    hub = MessageHub.get_instance('test_compat_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('iter', 10)
    checkpoint = {
        'meta': {'epoch': 1, 'iter': 10, 'seed': 0, 'experiment_name': 'x',
                 'dataset_meta': {'classes': ('rectangle', 'ellipse', 'triangle')}},
        'state_dict': model.state_dict(),
        'message_hub': hub.state_dict(),
    }
    torch.save(checkpoint, path)
    return model


@pytest.fixture
def local_loader():
    """Leave mmengine's local-file loader as this test found it (the integration helpers
    and the doctest collection of mmdet_losses.compat.torch_load may have patched it)."""
    found = CheckpointLoader._schemes['']
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    yield
    CheckpointLoader.register_scheme(prefixes='', loader=found, force=True)


@pytest.mark.skipif(not WEIGHTS_ONLY_DEFAULT, reason='torch < 2.6 loads with weights_only=False')
def test_fails_before_and_loads_after_the_opt_in(tmp_path, local_loader):
    path = str(tmp_path / 'epoch_1.pth')
    model = save_runner_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        _load_checkpoint(path, map_location='cpu')
    assert not compat.checkpoint_loading_patched()

    compat.patch_checkpoint_loading()
    compat.patch_checkpoint_loading()  # idempotent
    assert compat.checkpoint_loading_patched()
    target = torch.nn.Linear(3, 2)
    checkpoint = load_checkpoint(target, path, map_location='cpu')
    torch.testing.assert_close(target.weight, model.weight)
    assert checkpoint['meta']['iter'] == 10
    scalars = checkpoint['message_hub']['log_scalars']
    assert scalars['train/loss'].current() == 0.5

    compat.unpatch_checkpoint_loading()
    assert CheckpointLoader._schemes[''] is load_from_local
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(path, map_location='cpu')


def test_downloads_keep_torchs_default(local_loader):
    http = CheckpointLoader._schemes['https://']
    compat.patch_checkpoint_loading()
    assert CheckpointLoader._schemes['https://'] is http
    assert compat.load_from_local_trusted is not http


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        compat.load_from_local_trusted(str(tmp_path / 'missing.pth'))


def test_tools_use_the_package_fix():
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import mm_compat
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))
    assert mm_compat.patch_checkpoint_loading is compat.patch_checkpoint_loading


_LOAD_IN_FRESH_PROCESS = '''
import sys
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
Config.fromfile(sys.argv[1])  # imports custom_imports, as mmdet's tools/test.py does
try:
    checkpoint = _load_checkpoint(sys.argv[2], map_location='cpu')
except Exception as error:
    print('failed:', type(error).__name__, str(error).splitlines()[0])
else:
    print('loaded iter', checkpoint['meta']['iter'])
'''


@pytest.mark.skipif(not WEIGHTS_ONLY_DEFAULT, reason='torch < 2.6 loads with weights_only=False')
@pytest.mark.parametrize('imports, expected', [
    (['mmdet_losses'], 'failed: UnpicklingError Weights only load failed'),
    (['mmdet_losses', 'mmdet_losses.compat.torch_load'], 'loaded iter 10'),
])
def test_opt_in_from_a_config(tmp_path, imports, expected):
    """What mmdet's stock tools/test.py does: load the config (custom_imports), then the
    checkpoint; importing mmdet_losses alone changes nothing."""
    path = str(tmp_path / 'epoch_1.pth')
    save_runner_style_checkpoint(path)
    config = tmp_path / 'cfg.py'
    config.write_text(textwrap.dedent(f'''
        custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
    '''))
    run = subprocess.run([sys.executable, '-c', _LOAD_IN_FRESH_PROCESS, str(config), path],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith(expected), run.stdout + run.stderr


def _mmdet_tool(name):
    try:
        import mmdet
    except ImportError:
        return None
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', f'{name}.py')
    return path if osp.isfile(path) else None


@pytest.mark.skipif(not WEIGHTS_ONLY_DEFAULT or _mmdet_tool('test') is None,
                    reason="needs torch >= 2.6 and mmdet's packaged tools/test.py")
def test_mmdets_stock_test_tool_loads_a_checkpoint_after_the_opt_in(tmp_path):
    """The issue as a user meets it: mmdet's own tools/test.py on a checkpoint that mmengine's
    Runner saved (a 2-iteration RetinaNet on tiny shapes) fails under torch >= 2.6, and works
    once the config imports mmdet_losses.compat.torch_load."""
    from _integration_utils import RETINANET, load_tool, make_tiny_data, shrink

    data_root = make_tiny_data(tmp_path / 'shapes')
    train = load_tool('train')
    work_dir = tmp_path / 'train'
    cfg = shrink(train.build_config(train.parse_args([RETINANET, '--work-dir', str(work_dir)])),
                 data_root, work_dir)
    train.run_train(cfg)
    checkpoint = str(work_dir / 'epoch_1.pth')

    runs = {}
    for name, imports in (('plain', ['mmdet_losses']),
                          ('opt_in', ['mmdet_losses', 'mmdet_losses.compat.torch_load'])):
        cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
        cfg.work_dir = str(tmp_path / name)
        config = str(tmp_path / f'{name}.py')
        cfg.dump(config)
        run = subprocess.run([sys.executable, _mmdet_tool('test'), config, checkpoint],
                             capture_output=True, text=True, cwd=ROOT)
        runs[name] = (run.returncode, run.stdout + run.stderr)
    assert runs['plain'][0] != 0 and 'Weights only load failed' in runs['plain'][1]
    assert runs['opt_in'][0] == 0, runs['opt_in'][1][-3000:]
    assert 'Load checkpoint from' in runs['opt_in'][1], runs['opt_in'][1][-3000:]
    assert 'Epoch(test) [1/1]' in runs['opt_in'][1], runs['opt_in'][1][-3000:]
