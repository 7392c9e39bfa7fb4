"""TripletLoss as a drop-in for mmdet's: the same values and gradients as
``mmdet.models.losses.TripletLoss`` on PK batches, built from mmdet's registry by the scoped
name, and computed by mmdet's ReID head ``LinearReIDHead(loss_triplet=...)``."""
import types

import pytest
import torch
from _helpers import mmdet_loss

import mmdet_losses


def _pk_batch(identities=4, per_identity=3, dim=8, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(identities).repeat_interleave(per_identity)
    labels = labels[torch.randperm(len(labels), generator=gen)]
    return torch.randn(len(labels), dim, generator=gen, dtype=dtype), labels


@pytest.mark.parametrize('margin,loss_weight', [(0.3, 1.0), (1.0, 2.5), (3.0, 0.5)])
@pytest.mark.parametrize('per_identity', [2, 4])
def test_batch_hard_equals_mmdet_triplet_loss(margin, loss_weight, per_identity):
    x, labels = _pk_batch(per_identity=per_identity)
    ours_in, ref_in = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = mmdet_losses.TripletLoss(margin=margin, loss_weight=loss_weight)(ours_in, labels)
    ref = mmdet_loss('TripletLoss', margin=margin, loss_weight=loss_weight)(ref_in, labels)
    assert ref > 0
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)


def test_mmdet_registry_builds_ours_by_scoped_name_with_mmdet_arguments():
    from mmdet.registry import MODELS
    loss = MODELS.build(dict(type='mmdet_losses.TripletLoss', margin=0.4, loss_weight=2.0,
                             hard_mining=True))
    assert type(loss) is mmdet_losses.TripletLoss
    assert (loss.margin, loss.loss_weight, loss.mining) == (0.4, 2.0, 'batch_hard')


@pytest.fixture
def linear_reid_head(monkeypatch):
    """mmdet's LinearReIDHead. Its constructor refuses to run without mmpretrain, which it
    only uses for the accuracy of ``loss_cls``; these heads have no ``loss_cls``."""
    from mmdet.models.reid import linear_reid_head
    monkeypatch.setattr(linear_reid_head, 'mmpretrain',
                        linear_reid_head.mmpretrain or types.ModuleType('mmpretrain'))
    return linear_reid_head.LinearReIDHead


def _reid_samples(labels):
    from mmdet.structures import ReIDDataSample
    return [ReIDDataSample().set_gt_label(int(label)) for label in labels]


@pytest.mark.parametrize('triplet_args', [dict(margin=0.3, loss_weight=1.0),
                                          dict(margin=0.5, loss_weight=2.0, hard_mining=True)],
                         ids=['reid-config', 'hard_mining'])
def test_linear_reid_head_with_our_triplet_loss(linear_reid_head, triplet_args):
    from mmdet.registry import MODELS
    head_cfg = dict(type='LinearReIDHead', num_fcs=1, in_channels=16, fc_channels=12,
                    out_channels=8, norm_cfg=dict(type='BN1d'), act_cfg=dict(type='ReLU'))
    ours = MODELS.build(dict(head_cfg, loss_triplet=dict(type='mmdet_losses.TripletLoss',
                                                         **triplet_args)))
    theirs = MODELS.build(dict(head_cfg, loss_triplet=dict(type='TripletLoss', **triplet_args)))
    assert type(ours) is linear_reid_head
    assert type(ours.loss_triplet) is mmdet_losses.TripletLoss
    theirs.load_state_dict(ours.state_dict())

    gen = torch.Generator().manual_seed(3)
    feats = (torch.randn(12, 16, generator=gen),)
    _, labels = _pk_batch(identities=4, per_identity=3, seed=4)
    got = ours.loss(feats, _reid_samples(labels))
    want = theirs.loss(feats, _reid_samples(labels))
    assert set(got) == {'triplet_loss'} and want['triplet_loss'] > 0
    torch.testing.assert_close(got['triplet_loss'], want['triplet_loss'], rtol=1e-5,
                               atol=1e-6)
    got['triplet_loss'].backward()
    want['triplet_loss'].backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_reid_config_snippet_of_the_docs_builds_and_computes(linear_reid_head, tmp_path):
    """The inheriting config of docs/losses/metric.md on mmdet's MOT17 ReID config: its head
    (without the mmpretrain classifier loss, which needs mmpretrain) computes our loss."""
    import os.path as osp
    import re

    from mmengine.config import Config
    from mmdet.registry import MODELS
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    with open(osp.join(root, 'docs', 'losses', 'metric.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    snippet = next(b for b in blocks if "_base_ = 'mmdet::reid/" in b)
    (tmp_path / 'reid.py').write_text(snippet)
    cfg = Config.fromfile(str(tmp_path / 'reid.py'))
    head_cfg = dict(cfg.model.head, loss_cls=None, num_classes=None)
    head = MODELS.build(head_cfg)
    assert type(head.loss_triplet) is mmdet_losses.TripletLoss
    reference = mmdet_loss('TripletLoss', margin=0.3, loss_weight=1.0)

    gen = torch.Generator().manual_seed(5)
    feats = (torch.randn(8, cfg.model.head.in_channels, generator=gen),)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    got = head.loss(feats, _reid_samples(labels))['triplet_loss']
    with torch.no_grad():
        want = reference(head(feats), labels)
    assert want > 0
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
