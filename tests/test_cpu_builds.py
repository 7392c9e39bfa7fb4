"""The kernels' CPU-specific builds and the one switch over them (csrc/common/cpu_features.h).

The kernels with a CPU-specific build (the IoU-family variant kernels of ``_iou``, the focal
loss ``_focal``) compile their loops for any x86-64 CPU and for AVX2 + FMA, and run the latter
where the CPU has both, unless ``MMDET_LOSSES_GENERIC=1`` (alias: the former
``MMDET_LOSSES_IOU_GENERIC=1``) forces the generic build for every one of them. Each extension
reports the build it runs (``cpu_build()``). Checked here, in fresh processes (the switch is read
once per process): every dispatching kernel reads the switch, the default follows the CPU, and
both builds give the same losses and gradients (the variant kernels bit for bit, the focal loss
within a few ulp)."""
import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from mmdet_losses.ops import iou_kernels

pytestmark = pytest.mark.skipif(not iou_kernels.kernels_available(),
                                reason='the compiled kernels are not built')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, 'tests')
SWITCHES = ('MMDET_LOSSES_GENERIC', 'MMDET_LOSSES_IOU_GENERIC')
# The extensions with a CPU-specific build; the others report 'generic' always.
DISPATCHING = ('iou', 'focal')
ALL = ('iou', 'focal', 'regression')

REPORT = r'''
import importlib, json
builds = {name: importlib.import_module(f'mmdet_losses.ops._{name}').cpu_build()
          for name in %r}
from mmdet_losses.ops import _iou, _focal
builds['iou.variants_use_avx2'] = _iou.variants_use_avx2()
builds['focal.uses_avx2'] = _focal.uses_avx2()
print(json.dumps(builds))
''' % (ALL,)


def _environment(**switches):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(switches)
    return env


def _run(code, **switches):
    result = subprocess.run([sys.executable, '-c', code], env=_environment(**switches),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cpu_has_avx2_fma():
    if platform.machine() not in ('x86_64', 'AMD64') or not os.path.exists('/proc/cpuinfo'):
        return None  # unknown here: the default build is not checked
    with open('/proc/cpuinfo') as f:
        flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')),
                     [])
    return 'avx2' in flags and 'fma' in flags


@pytest.mark.parametrize('switch', SWITCHES)
def test_switch_forces_the_generic_build_of_every_kernel(switch):
    builds = _run(REPORT, **{switch: '1'})
    assert {name: builds[name] for name in ALL} == {name: 'generic' for name in ALL}
    assert builds['iou.variants_use_avx2'] is False and builds['focal.uses_avx2'] is False


def test_info_reports_the_build_that_runs():
    """``python -m mmdet_losses info`` names each loaded kernel's build, as cpu_build()."""
    default = _run(REPORT)
    for switches, builds in (({}, default), ({'MMDET_LOSSES_GENERIC': '1'},
                                             {name: 'generic' for name in ALL})):
        result = subprocess.run([sys.executable, '-m', 'mmdet_losses', 'info'],
                                env=_environment(**switches), cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        for name in ALL:
            assert f'{name:<11} loaded ({builds[name]})' in result.stdout, result.stdout


@pytest.mark.parametrize('value', [None, '0', ''], ids=['unset', 'zero', 'empty'])
def test_default_build_follows_the_cpu(value):
    """Unset, "0" or empty: the switch is off, and the CPU decides."""
    has = _cpu_has_avx2_fma()
    if has is None:
        pytest.skip('not an x86-64 Linux CPU: its features are not read here')
    builds = _run(REPORT, **({} if value is None else {'MMDET_LOSSES_GENERIC': value}))
    expected = 'avx2' if has else 'generic'
    assert {name: builds[name] for name in DISPATCHING} == {name: expected for name in DISPATCHING}
    assert builds['regression'] == 'generic'
    assert builds['iou.variants_use_avx2'] is has and builds['focal.uses_avx2'] is has


# Losses and gradients of every variant kernel case of test_iou_variant_kernels and of the focal
# kernel (every gamma branch, every weight mode, both forwards and the backward), float32 and
# float64, written to a file by the build that runs.
COMPUTE = r'''
import sys, json, torch
sys.path.insert(0, %r)
from test_iou_variant_kernels import CASES, EPS
from _helpers import random_pairs
from mmdet_losses.ops import _focal, _iou
from mmdet_losses.ops.iou_kernels import fused_variant_loss

out = {}
for dtype in (torch.float32, torch.float64):
    pred, target = random_pairs(256, dtype, seed=3)
    for variant, params, base in CASES:
        p = pred.clone().requires_grad_(True)
        t = target.clone().requires_grad_(True)
        loss = fused_variant_loss(p, t, variant, EPS, params, base or 'iou')
        loss = loss[0] if variant == 'wiou' else loss
        loss.sum().backward()
        out[f'{variant}-{params}-{base}-{dtype}'] = (loss.detach(), p.grad, t.grad)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(300, 17, generator=g, dtype=dtype) * 6
    labels = torch.randint(0, 18, (300,), generator=g)
    weights = {'none': None, 'anchor': torch.rand(300, 1, generator=g, dtype=dtype),
               'element': torch.rand(300, 17, generator=g, dtype=dtype)}
    go = torch.rand(300, 17, generator=g, dtype=dtype)
    for gamma in (0.0, 1.0, 2.0, 3.0, 1.5):
        for mode, w in weights.items():
            key = f'focal-{gamma}-{mode}-{dtype}'
            out[key + '-sum'] = tuple(
                _focal.forward_with_grad(logits, labels, w, gamma, 0.25, True))
            out[key + '-none'] = (_focal.forward(logits, labels, w, gamma, 0.25, False),
                                  _focal.backward(go, logits, labels, w, gamma, 0.25))
torch.save(out, sys.argv[1])
print(json.dumps({'iou': _iou.cpu_build(), 'focal': _focal.cpu_build()}))
''' % (TESTS,)


def _compute(path, **switches):
    result = subprocess.run([sys.executable, '-c', COMPUTE, str(path)],
                            env=_environment(**switches), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), torch.load(path)


def test_builds_give_the_same_results(tmp_path):
    generic_builds, generic = _compute(tmp_path / 'generic.pt', MMDET_LOSSES_GENERIC='1')
    default_builds, default = _compute(tmp_path / 'default.pt')
    assert generic_builds == {'iou': 'generic', 'focal': 'generic'}
    if _cpu_has_avx2_fma():
        assert default_builds == {'iou': 'avx2', 'focal': 'avx2'}
    assert generic.keys() == default.keys()
    for key, values in generic.items():
        for ours, theirs in zip(values, default[key]):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, key
            if not key.startswith('focal'):
                # the variant kernels' AVX2 build contracts no a * b + c and runs the same
                # 32-byte packs: the same roundings, bit for bit (measured so)
                assert torch.equal(ours, theirs), key
                continue
            # the focal AVX2 build may fuse multiply-adds: a few ulp (measured: float32 within
            # 1e-6 relative, float64 6e-16)
            tol = (dict(rtol=1e-5, atol=1e-6) if ours.dtype == torch.float32
                   else dict(rtol=1e-12, atol=1e-14))
            torch.testing.assert_close(ours, theirs, **tol, msg=lambda m, key=key: f'{key}: {m}')
