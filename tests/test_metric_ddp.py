"""Metric losses under DistributedDataParallel: 2 CPU processes (gloo) started here, each with
half of the batch, against one process with the whole batch. The gradients of the first step,
the losses and the parameters (the CenterLoss centres among them) after a few SGD steps must
be the same."""
import datetime
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmdet_losses import MODELS

WORLD = 2
PER_RANK = 4
STEPS = 3
LR = 0.1
TIMEOUT_S = 60  # a hung collective fails the test instead of the suite
# Each rank's half has singleton classes, so mining inside one half differs from the whole.
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])

CONFIGS = {
    'triplet_hard': dict(type='mmdet_losses.TripletLoss', margin=0.3, gather_distributed=True),
    'triplet_all_soft': dict(type='mmdet_losses.TripletLoss', margin=0.3, mining='batch_all',
                             soft_margin=True, gather_distributed=True),
    'contrastive': dict(type='mmdet_losses.ContrastiveLoss', margin=1.0,
                        gather_distributed=True),
    'center': dict(type='mmdet_losses.CenterLoss', num_classes=3, feat_dim=4),
    # the control: mining within each rank's half is not the whole batch's
    'triplet_local': dict(type='mmdet_losses.TripletLoss', margin=0.3),
}


class EmbeddingNet(nn.Module):
    """A linear embedding and the loss (with its centres, if any) under one DDP wrapper."""

    def __init__(self, loss_cfg):
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Linear(6, 4)
        self.loss = MODELS.build(loss_cfg)
        self.double()

    def forward(self, x, labels):
        return self.loss(self.embed(x), labels)


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(STEPS, WORLD * PER_RANK, 6, generator=gen, dtype=torch.float64)


def train(loss_cfg, rank=0, world=1):
    """STEPS SGD steps on this rank's share of the batch (world=1: the whole batch)."""
    net = EmbeddingNet(loss_cfg)
    model = DistributedDataParallel(net) if world > 1 else net
    share = slice(rank * len(LABELS) // world, (rank + 1) * len(LABELS) // world)
    losses, first_grads = [], None
    for x in _inputs():
        net.zero_grad()
        loss = model(x[share], LABELS[share])
        loss.backward()
        losses.append(loss.detach())
        if first_grads is None:
            first_grads = {k: p.grad.clone() for k, p in net.named_parameters()}
        # plain SGD by hand: torch.optim's first import costs seconds in each process
        with torch.no_grad():
            for p in net.parameters():
                p -= LR * p.grad
    params = {k: p.detach().clone() for k, p in net.named_parameters()}
    return dict(losses=torch.stack(losses), grads=first_grads, params=params)


def _worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        results = {name: train(cfg, rank, world) for name, cfg in CONFIGS.items()}
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    if not dist.is_available():
        pytest.skip('torch.distributed is not available')
    out_dir = tmp_path_factory.mktemp('ddp')
    context = mp.start_processes(_worker, args=(WORLD, _free_port(), str(out_dir)),
                                 nprocs=WORLD, join=False, start_method='spawn')
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f'the {WORLD} DDP processes did not finish in {TIMEOUT_S} s')
    return [torch.load(out_dir / f'rank{r}.pt') for r in range(WORLD)]


def _close(got, want, what):
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=what)


@pytest.mark.parametrize('name', [n for n in CONFIGS if n != 'triplet_local'])
def test_ddp_equals_one_process_on_the_whole_batch(ddp_results, name):
    single = train(CONFIGS[name])
    for rank in range(WORLD):
        _close(ddp_results[rank][name]['grads'], single['grads'], f'rank {rank} gradients')
        _close(ddp_results[rank][name]['params'], single['params'], f'rank {rank} parameters')
    rank_losses = torch.stack([r[name]['losses'] for r in ddp_results])
    if CONFIGS[name].get('gather_distributed'):  # every rank has the whole batch's loss
        for rank in range(WORLD):
            _close(rank_losses[rank], single['losses'], f'rank {rank} losses')
    else:  # each rank has its half's mean; DDP averages them
        _close(rank_losses.mean(0), single['losses'], 'mean of the ranks\' losses')
    # the steps did move the embedding and the centres (the bias gets no gradient from a
    # loss of distances only)
    start = dict(EmbeddingNet(CONFIGS[name]).named_parameters())
    for key in ('embed.weight', 'loss.centers'):
        if key in start:
            assert not torch.allclose(start[key].detach(), single['params'][key])


def test_local_mining_differs_from_the_whole_batch(ddp_results):
    # without gather_distributed, each rank mines in its own half: not the whole batch's loss
    single = train(CONFIGS['triplet_local'])
    local = ddp_results[0]['triplet_local']
    assert not torch.allclose(local['grads']['embed.weight'], single['grads']['embed.weight'])
    # but DDP still keeps the replicas equal
    torch.testing.assert_close(local['params'], ddp_results[1]['triplet_local']['params'])
