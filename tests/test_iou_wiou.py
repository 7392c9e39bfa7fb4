"""WIoU's running mean of L_IoU = 1 - IoU: a buffer, updated in training mode only, weighted,
and identical on every rank under torch.distributed (two gloo processes)."""
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mmdet_losses
import mmdet_losses.functional as F

PRED = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0], [5.0, 5.0, 6.0, 6.0]])
TARGET = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 4.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
L_IOU = torch.tensor([2 / 3, 1 / 2, 0.0])  # 1 - IoU of the three pairs, by hand


def l_iou(pred, target):
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (pred[:, 2:] - pred[:, :2]).prod(-1) + (target[:, 2:] - target[:, :2]).prod(-1) \
        - inter
    return 1 - inter / union


def test_running_mean_updates_in_training_only():
    loss = mmdet_losses.WIoULoss(momentum=0.1)
    assert loss.running_mean.item() == 1.0
    assert 'running_mean' in loss.state_dict()
    loss(PRED, TARGET)
    expected = 0.9 * 1.0 + 0.1 * L_IOU.mean().item()
    assert loss.running_mean.item() == pytest.approx(expected, rel=1e-6)
    loss.eval()
    value = loss(PRED, TARGET, reduction_override='none')
    assert loss.running_mean.item() == pytest.approx(expected, rel=1e-6)  # unchanged in eval
    # v3 with the stored mean: r = beta / (delta alpha^(beta - delta)), beta = L_IoU / mean
    beta = L_IOU / expected
    r = beta / (3.0 * 1.9 ** (beta - 3.0))
    rho2_over_c2 = torch.tensor([1 / 13, 1 / 32, 0.0])  # centre offsets over the diagonals
    torch.testing.assert_close(value, r * torch.exp(rho2_over_c2) * L_IOU)


def test_v2_uses_the_updated_mean_and_v1_keeps_none():
    loss = mmdet_losses.WIoULoss(version='v2', momentum=1.0)  # mean <- this batch's mean
    value = loss(PRED[:2], TARGET[:2], reduction_override='none')
    mean = L_IOU[:2].mean()
    assert loss.running_mean.item() == pytest.approx(mean.item(), rel=1e-6)
    expected = (L_IOU[:2] / mean).sqrt() * torch.exp(torch.tensor([1 / 13, 1 / 32])) * L_IOU[:2]
    torch.testing.assert_close(value, expected)
    v1 = mmdet_losses.WIoULoss(version='v1')
    v1(PRED, TARGET)
    assert v1.running_mean.item() == 1.0


def test_statistic_is_weighted_and_skips_all_zero_weight():
    loss = mmdet_losses.WIoULoss(momentum=1.0)
    # weight (N, 4), as mmdet's heads pass: the third box is a negative (weight 0)
    weight = torch.tensor([[1.0] * 4, [3.0] * 4, [0.0] * 4])
    loss(PRED, TARGET, weight=weight)
    expected = (1 * 2 / 3 + 3 * 1 / 2) / 4
    assert loss.running_mean.item() == pytest.approx(expected, rel=1e-6)
    loss(PRED, TARGET, weight=torch.zeros(3))
    assert loss.running_mean.item() == pytest.approx(expected, rel=1e-6)
    loss(torch.zeros(0, 4), torch.zeros(0, 4))  # empty batch: no update, no NaN
    assert loss.running_mean.item() == pytest.approx(expected, rel=1e-6)


def test_functional_updates_a_given_running_mean_in_place():
    mean = torch.tensor(0.5, dtype=torch.float64)
    F.wiou_loss(PRED.double(), TARGET.double(), running_mean=mean, training=True, momentum=0.5)
    assert mean.item() == pytest.approx(0.5 * 0.5 + 0.5 * L_IOU.mean().item(), rel=1e-6)
    before = mean.clone()
    F.wiou_loss(PRED.double(), TARGET.double(), running_mean=mean, training=False)
    assert torch.equal(mean, before)


def test_state_follows_the_module():
    loss = mmdet_losses.WIoULoss(momentum=0.5)
    loss(PRED, TARGET)
    clone = mmdet_losses.WIoULoss()
    clone.load_state_dict(loss.state_dict())
    assert clone.running_mean.item() == loss.running_mean.item()
    assert loss.double().running_mean.dtype == torch.float64
    half = mmdet_losses.WIoULoss().half()  # a half buffer still gets a float32 statistic
    half(PRED.half(), TARGET.half())
    assert math.isfinite(half.running_mean.item()) and half.running_mean.item() < 1.0


def _rank_worker(rank, world_size, init_file, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        loss = mmdet_losses.WIoULoss(momentum=0.5)
        # different boxes and box counts on each rank
        pred, target = (PRED[:2], TARGET[:2]) if rank == 0 else (PRED[1:], TARGET[1:])
        weight = torch.tensor([1.0, 1.0]) if rank == 0 else torch.tensor([2.0, 1.0])
        loss(pred, target, weight=weight)
        torch.save(loss.running_mean.clone(), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_running_mean_equal_on_every_rank():
    with tempfile.TemporaryDirectory() as tmp:
        # fork: the children inherit the imports, so the test stays fast
        mp.start_processes(_rank_worker, args=(2, os.path.join(tmp, 'init'), tmp), nprocs=2,
                           join=True, start_method='fork')
        means = [torch.load(os.path.join(tmp, f'rank{r}.pt')).item() for r in range(2)]
    # global weighted batch mean: rank 0 boxes 0, 1 (w 1, 1); rank 1 boxes 1, 2 (w 2, 1)
    batch_mean = (2 / 3 + 1 / 2 + 2 * 1 / 2 + 0.0) / 5
    assert means[0] == means[1] == pytest.approx(0.5 * 1.0 + 0.5 * batch_mean, rel=1e-6)


def test_hand_values_match_the_helper():
    torch.testing.assert_close(l_iou(PRED, TARGET), L_IOU)


def _unsynced_worker(rank, world_size, init_file, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        loss = mmdet_losses.WIoULoss(momentum=1.0, sync=False)
        if rank == 0:  # rank 1 never calls the loss: no collective may be waited on
            loss(PRED[:1], TARGET[:1])
        torch.save(loss.running_mean.clone(), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_sync_false_keeps_per_rank_means_without_collectives():
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_unsynced_worker, args=(2, os.path.join(tmp, 'init'), tmp),
                           nprocs=2, join=True, start_method='fork')
        means = [torch.load(os.path.join(tmp, f'rank{r}.pt')).item() for r in range(2)]
    assert means == [pytest.approx(2 / 3, rel=1e-6), 1.0]
