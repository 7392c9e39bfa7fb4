"""The registry: a child of mmengine's MODELS, reachable from mmdet's registry by scope."""
import subprocess
import sys

import torch
from mmengine.registry import MODELS as MMENGINE_MODELS

import mmdet_losses
from mmdet_losses.losses import BaseLoss
from mmdet_losses.registry import MODELS


def test_child_of_mmengine_models_with_scope():
    assert MODELS.scope == 'mmdet_losses'
    assert MODELS.parent is MMENGINE_MODELS
    assert MMENGINE_MODELS.children['mmdet_losses'] is MODELS


def test_every_exported_loss_is_registered_under_its_class_name():
    exported = {name for name in mmdet_losses.losses.__all__ if name != 'BaseLoss'}
    registered = set(MODELS.module_dict)
    assert exported <= registered
    for name in exported:
        cls = MODELS.get(name)
        assert cls is getattr(mmdet_losses, name) and issubclass(cls, BaseLoss)


def test_build_through_mmdet_registry_by_scoped_name():
    from mmdet.registry import MODELS as MMDET_MODELS
    loss = MMDET_MODELS.build(dict(type='mmdet_losses.SmoothL1Loss', beta=0.5, loss_weight=2.0))
    assert type(loss) is mmdet_losses.SmoothL1Loss
    assert (loss.beta, loss.loss_weight) == (0.5, 2.0)
    value = loss(torch.tensor([1.0, 0.25]), torch.zeros(2), reduction_override='sum')
    # 2 * ((1 - 0.25) + 0.5 * 0.25^2 / 0.5)
    torch.testing.assert_close(value, torch.tensor(2 * (0.75 + 0.0625)))


def test_scoped_name_and_custom_imports_in_a_fresh_process():
    """From a config, as tools/train.py sees it: nothing of ours imported beforehand."""
    code = '''
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmdet.registry import MODELS
cfg = Config(dict(custom_imports=dict(imports=['mmdet_losses'], allow_failed_imports=False),
                  loss=dict(type='mmdet_losses.L1Loss', loss_weight=3.0)))
import_modules_from_strings(**cfg.custom_imports)
loss = MODELS.build(cfg.loss)
print(type(loss).__module__, type(loss).__name__, loss.loss_weight)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ['mmdet_losses.losses.regression', 'L1Loss', '3.0']


def test_scoped_name_without_custom_imports_uses_registry_locations():
    code = '''
from mmdet.registry import MODELS
loss = MODELS.build(dict(type='mmdet_losses.MSELoss'))
print(type(loss).__module__)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == 'mmdet_losses.losses.regression'
