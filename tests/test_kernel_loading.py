"""A compiled kernel that is missing or broken is never silent (issue: kernels that fail to
load must say so): a KernelWarning once, naming the cause and the rebuild command;
``MMDET_LOSSES_NO_EXT=1`` is the silent opt-out; ``python -m mmdet_losses info`` tells which
kernels run; a build that cannot see torch fails instead of dropping the kernels."""
import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports the package, records its warnings, prints the kernel states and a CIoU value (the
# plain path must still give the right number).
PROBE = r'''
import warnings
warnings.simplefilter('always')
with warnings.catch_warnings(record=True) as caught:
    import torch, mmdet_losses
    from mmdet_losses.ops._ext import KernelWarning, kernel_status
    status = kernel_status()
ours = [w for w in caught if issubclass(w.category, KernelWarning)]
print('WARNINGS', len(ours))
for w in ours:
    print('MESSAGE', w.message)
print('STATUS', status)
pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
print('VALUE', round(float(mmdet_losses.functional.giou_loss(pred, target)), 4))
'''


def _package_copy(tmp_path: Path, with_libraries: bool) -> Path:
    """The package's Python files (and its built libraries if asked) under tmp_path."""
    skip = () if with_libraries else tuple(importlib.machinery.EXTENSION_SUFFIXES)

    def ignore(folder, names):
        return [n for n in names if n == '__pycache__' or n == 'csrc' or n.endswith(skip)]

    shutil.copytree(ROOT / 'mmdet_losses', tmp_path / 'mmdet_losses', ignore=ignore)
    return tmp_path


def _run(path: Path, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != 'MMDET_LOSSES_NO_EXT'}
    environment.update(env, PYTHONPATH=str(path))
    result = subprocess.run([sys.executable, '-c', PROBE], cwd=path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_missing_kernels_warn_once_with_the_rebuild_command(tmp_path):
    out = _run(_package_copy(tmp_path, with_libraries=False))
    assert 'WARNINGS 1' in out  # once, although three kernel modules failed to load
    assert 'not built' in out and '--no-build-isolation' in out
    assert "'iou': 'not built'" in out and "'focal': 'not built'" in out
    assert 'VALUE 0.6667' in out  # IoU 2/6, enclosing box = union: 1 - 1/3


def test_a_corrupt_library_warns_with_its_cause(tmp_path):
    path = _package_copy(tmp_path, with_libraries=False)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (path / 'mmdet_losses' / 'ops' / f'_iou{suffix}').write_bytes(b'not an ELF file')
    out = _run(path)
    assert 'WARNINGS 1' in out
    assert 'could not be loaded' in out and '_iou' in out
    assert "'iou': 'failed:" in out
    assert 'VALUE 0.6667' in out


def test_no_ext_is_a_silent_opt_out(tmp_path):
    out = _run(_package_copy(tmp_path, with_libraries=False), MMDET_LOSSES_NO_EXT='1')
    assert 'WARNINGS 0' in out
    assert "'regression': 'disabled'" in out
    assert 'VALUE 0.6667' in out


def test_info_names_every_kernel_and_its_state():
    from mmdet_losses.catalogue import main
    from mmdet_losses.ops._ext import kernel_status
    status = kernel_status()
    assert set(status) == {'focal', 'iou', 'regression'}
    result = subprocess.run([sys.executable, '-m', 'mmdet_losses', 'info'], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name, state in status.items():
        assert f'{name:<11} {state}' in result.stdout
    assert 'float32, float64 on cpu' in result.stdout
    assert main(['info']) == 0


def test_a_build_without_torch_fails_loudly(tmp_path):
    for name in ('setup.py', 'README.md'):
        shutil.copy(ROOT / name, tmp_path / name)
    hide_torch = ("import sys; sys.modules['torch'] = None; "
                  "sys.argv = ['setup.py', 'build_ext']; import runpy; runpy.run_path('setup.py', run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != 'MMDET_LOSSES_NO_EXT'}
    result = subprocess.run([sys.executable, '-c', hide_torch], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'torch is not importable' in result.stderr
    assert '--no-build-isolation' in result.stderr


def test_a_build_with_no_ext_needs_no_torch(tmp_path):
    for name in ('setup.py', 'README.md'):
        shutil.copy(ROOT / name, tmp_path / name)
    hide_torch = ("import sys; sys.modules['torch'] = None; "
                  "sys.argv = ['setup.py', '--name']; import runpy; runpy.run_path('setup.py', run_name='__main__')")
    env = dict(os.environ, MMDET_LOSSES_NO_EXT='1')
    result = subprocess.run([sys.executable, '-c', hide_torch], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'mmdet-losses'


def test_the_losses_need_neither_mmdet_nor_mmcv():
    """From Python the package needs torch and mmengine only (README, "Your own environment")."""
    code = ("import sys; sys.modules.update(mmdet=None, mmcv=None)\n"
            "import torch, mmdet_losses\n"
            "pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)\n"
            "target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])\n"
            "loss = mmdet_losses.MODELS.build(dict(type='GIoULoss'))(pred, target)\n"
            "loss.backward()\n"
            "print(round(float(loss), 4), 'mmdet' in sys.modules and sys.modules['mmdet'])")
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['0.6667', 'None']
