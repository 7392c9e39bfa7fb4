"""Seesaw, GHM-C and GHM-R against mmdet 3.3.0's classes (values, gradients and the state over
consecutive steps), their state across a checkpoint and under DDP, and the edge cases where
mmdet's give NaN or need a host sync (empty bins, an all-ignored batch, momentum 1, NaN in)."""
import datetime
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mmdet_losses
from mmdet_losses import GHMC, GHMR, MODELS, SeesawLoss
from mmdet_losses import functional as F

mmdet_losses_mmdet = pytest.importorskip('mmdet.models.losses')
NAN, INF = float('nan'), float('inf')
C = 5
# mmdet computes some float64 parts in float32 (its float32 targets and buffers): compared to
# float32 accuracy
TOL = dict(rtol=1e-5, atol=1e-6)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _seesaw_batch(seed, n=24, dtype=torch.float32):
    gen = _gen(seed)
    pred = (torch.randn(n, C + 2, generator=gen) * 2).to(dtype)
    # long-tailed labels: class 0 frequent, background frequent
    labels = torch.multinomial(torch.tensor([8.0, 4, 2, 1, 0.5, 6]), n, replacement=True,
                               generator=gen)
    return pred, labels, (0.5 + torch.rand(n, generator=gen)).to(dtype)


def _ghmc_batch(seed, n=30, dense=False, dtype=torch.float32):
    gen = _gen(seed)
    pred = (torch.randn(n, C, generator=gen) * 2).to(dtype)
    if dense:
        return (pred, (torch.rand(n, C, generator=gen) > 0.7).to(dtype),
                (torch.rand(n, C, generator=gen) > 0.3).to(dtype))
    return (pred, torch.randint(0, C + 1, (n,), generator=gen),
            (torch.rand(n, generator=gen) > 0.2).to(dtype))


def _ghmr_batch(seed, n=30, dtype=torch.float32):
    gen = _gen(seed)
    return ((torch.randn(n, 4, generator=gen) * 0.05).to(dtype),
            (torch.randn(n, 4, generator=gen) * 0.05).to(dtype),
            (torch.rand(n, 4, generator=gen) > 0.3).to(dtype))


def _both(ours, theirs, pred, *args, **kwargs):
    """(our loss, mmdet's loss, our grad, mmdet's grad); dict losses are summed for the grad."""
    a, b = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    lo, lt = ours(a, *args, **kwargs), theirs(b, *args, **kwargs)
    total = (lambda x: sum(x.values()) if isinstance(x, dict) else x.sum())
    total(lo).backward()
    total(lt).backward()
    return lo, lt, a.grad, b.grad


# ------------------------------------------------------------------------ Seesaw vs mmdet
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('p,q', [(0.8, 2.0), (0.0, 2.0), (0.8, 0.0), (1.5, 1.0)])
def test_seesaw_equals_mmdet_over_steps(p, q, dtype):
    ours = SeesawLoss(num_classes=C, p=p, q=q)
    theirs = mmdet_losses_mmdet.SeesawLoss(num_classes=C, p=p, q=q)
    for step in range(4):
        pred, labels, weight = _seesaw_batch(step, dtype=dtype)
        for kwargs in (dict(), dict(avg_factor=7.0), dict(reduction_override='sum')):
            saved = ours.cum_samples.clone(), theirs.cum_samples.clone()
            lo, lt, go, gt = _both(ours, theirs, pred, labels, weight, **kwargs)
            assert set(lo) == {'loss_cls_objectness', 'loss_cls_classes'}
            for key in lo:
                torch.testing.assert_close(lo[key].double(), lt[key].double(), **TOL)
            torch.testing.assert_close(go, gt, **TOL)
            torch.testing.assert_close(ours.cum_samples, theirs.cum_samples, rtol=0, atol=0)
            if kwargs:  # count each step's batch once
                ours.cum_samples.copy_(saved[0])
                theirs.cum_samples.copy_(saved[1])
    # the counts are the labels of the 4 batches (the repeated calls were rolled back)
    want = sum(torch.bincount(_seesaw_batch(s)[1], minlength=C + 1).float() for s in range(4))
    assert torch.equal(ours.cum_samples, want)


def test_seesaw_formula_written_plainly():
    """One foreground sample, counts (100, 10, 50): the class term by the paper's formula."""
    pred = torch.tensor([[0.5, 2.0, 1.0, 0.3, -0.2]])
    loss = SeesawLoss(num_classes=3, return_dict=True)
    loss.cum_samples.copy_(torch.tensor([99.0, 10.0, 50.0, 0.0]))  # + this sample's label 0
    out = loss(pred, torch.tensor([0]))
    z, n = pred[0, :3], torch.tensor([100.0, 10.0, 50.0])
    s = torch.softmax(z, 0)
    factors = [(min(n[j] / n[0], 1.0) ** 0.8) * (max(s[j] / max(s[0], 1e-2), 1.0) ** 2.0)
               for j in range(3)]
    want = -torch.log(torch.exp(z[0]) / (torch.exp(z[0]) + sum(
        factors[j] * torch.exp(z[j]) for j in (1, 2))))
    torch.testing.assert_close(out['loss_cls_classes'], want)
    torch.testing.assert_close(out['loss_cls_objectness'],
                               torch.nn.functional.cross_entropy(pred[:, 3:], torch.tensor([0])))


def test_seesaw_classifier_interface_equals_mmdet():
    ours = SeesawLoss(num_classes=C)
    theirs = mmdet_losses_mmdet.SeesawLoss(num_classes=C)
    pred, labels, _ = _seesaw_batch(3)
    assert ours.custom_cls_channels and ours.custom_activation and ours.custom_accuracy
    assert ours.get_cls_channels(C) == theirs.get_cls_channels(C) == C + 2
    torch.testing.assert_close(ours.get_activation(pred), theirs.get_activation(pred))
    got, want = ours.get_accuracy(pred, labels), theirs.get_accuracy(pred, labels)
    assert set(got) == set(want)
    for key in got:
        torch.testing.assert_close(got[key], want[key])
    # no foreground sample: 0 accuracy for the classes, as mmdet
    background = torch.full((4,), C)
    assert float(ours.get_accuracy(pred[:4], background)['acc_classes']) == 0.0
    with pytest.raises(ValueError, match='num_classes'):
        ours.get_cls_channels(C + 1)
    with pytest.raises(ValueError, match='channels'):
        ours.get_activation(pred[:, :-1])


def test_seesaw_builds_from_mmdet_config_and_no_foreground():
    loss = MODELS.build(dict(type='mmdet_losses.SeesawLoss', p=0.8, q=2.0, num_classes=C,
                             loss_weight=1.0))
    assert isinstance(loss, SeesawLoss)
    pred = torch.randn(3, C + 2, requires_grad=True)
    out = loss(pred, torch.full((3,), C))
    theirs = mmdet_losses_mmdet.SeesawLoss(num_classes=C)(pred, torch.full((3,), C))
    assert float(out['loss_cls_classes'].detach()) == 0.0
    torch.testing.assert_close(out['loss_cls_objectness'], theirs['loss_cls_objectness'])
    sum(out.values()).backward()
    assert torch.isfinite(pred.grad).all()


def test_seesaw_reduction_none_is_per_sample():
    """'none': (N,) per sample, the class term 0 for background samples (mmdet returns the
    foreground ones only, (num_pos,), which needs a host sync)."""
    loss = SeesawLoss(num_classes=C, return_dict=True)
    theirs = mmdet_losses_mmdet.SeesawLoss(num_classes=C)
    pred, labels, weight = _seesaw_batch(4)
    out = loss(pred, labels, weight, reduction_override='none')
    want = theirs(pred, labels, weight, reduction_override='none')
    positive = labels < C
    torch.testing.assert_close(out['loss_cls_classes'][positive], want['loss_cls_classes'])
    assert torch.all(out['loss_cls_classes'][~positive] == 0)
    torch.testing.assert_close(out['loss_cls_objectness'], want['loss_cls_objectness'])


# --------------------------------------------------------------------------- GHM vs mmdet
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('momentum', [0.0, 0.75])
@pytest.mark.parametrize('dense', [False, True], ids=['labels', 'dense'])
def test_ghmc_equals_mmdet_over_steps(dense, momentum, dtype):
    ours = GHMC(bins=10, momentum=momentum)
    theirs = mmdet_losses_mmdet.GHMC(bins=10, momentum=momentum)
    for step in range(4):
        pred, target, weight = _ghmc_batch(step, dense=dense, dtype=dtype)
        for reduction in ('none', 'mean'):
            if momentum:  # one update per step: repeat the step's starting state
                start = ours.acc_sum.clone(), theirs.acc_sum.clone()
            lo, lt, go, gt = _both(ours, theirs, pred, target, weight,
                                   reduction_override=reduction)
            torch.testing.assert_close(lo.double(), lt.double(), **TOL)
            torch.testing.assert_close(go.double(), gt.double(), **TOL)
            if momentum:
                torch.testing.assert_close(ours.acc_sum, theirs.acc_sum)
                if reduction == 'none':
                    ours.acc_sum.copy_(start[0])
                    theirs.acc_sum.copy_(start[1])
    if momentum:
        assert ours.acc_sum.sum() > 0


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('momentum', [0.0, 0.75])
def test_ghmr_equals_mmdet_over_steps(momentum, dtype):
    ours = GHMR(mu=0.02, bins=10, momentum=momentum)
    theirs = mmdet_losses_mmdet.GHMR(mu=0.02, bins=10, momentum=momentum)
    for step in range(4):
        pred, target, weight = _ghmr_batch(step, dtype=dtype)
        lo, lt, go, gt = _both(ours, theirs, pred, target, weight)
        torch.testing.assert_close(lo.double(), lt.double(), **TOL)
        torch.testing.assert_close(go.double(), gt.double(), **TOL)
        if momentum:
            torch.testing.assert_close(ours.acc_sum, theirs.acc_sum)


def test_ghmc_formula_written_plainly():
    """Four elements, bins of width 0.5: g = 0.12, 0.27, 0.73, 0.5 -> bins 0, 0, 1, 1."""
    pred = torch.tensor([2.0, 1.0, 1.0, 0.0]).reshape(2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 1.0]).reshape(2, 2)
    g = (torch.sigmoid(pred) - target).abs()
    assert g.flatten().tolist() == pytest.approx([0.1192, 0.2689, 0.7311, 0.5], abs=1e-4)
    beta = 4 / (2 * 2)  # T / (n_bins * count): every bin holds 2
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction='none')
    torch.testing.assert_close(GHMC(bins=2)(pred, target), (bce * beta).sum() / 4)


def test_ghm_avg_factor_checked_but_not_used():
    """mmdet's heads pass avg_factor; mmdet's GHM ignores it (normalises by T): so do we."""
    pred, target, weight = _ghmc_batch(1)
    base = GHMC()(pred, target, weight)
    torch.testing.assert_close(GHMC()(pred, target, weight, avg_factor=3.0), base)
    with pytest.raises(ValueError, match='avg_factor'):
        GHMC()(pred, target, weight, avg_factor=-1.0)


# ------------------------------------------------------------ edges where mmdet's fail
def test_ghm_empty_bins_and_all_ignored_batch_are_finite():
    for loss in (GHMC(bins=30, momentum=0.5), GHMC(bins=30)):
        pred = torch.full((4, 3), 3.0, requires_grad=True)  # every g in one bin: 29 empty
        out = loss(pred, torch.zeros(4, dtype=torch.long))
        assert torch.isfinite(out)
        out.backward()
        assert torch.isfinite(pred.grad).all()
        # all ignored: 0, finite gradient, no state change
        before = None if loss.acc_sum is None else loss.acc_sum.clone()
        pred = torch.randn(4, 3, requires_grad=True)
        out = loss(pred, torch.zeros(4, dtype=torch.long), torch.zeros(4))
        assert float(out.detach()) == 0.0
        out.backward()
        assert torch.equal(pred.grad, torch.zeros(4, 3))
        if before is not None:
            assert torch.equal(loss.acc_sum, before)
    out = GHMR(momentum=0.5)(torch.randn(3, 4), torch.randn(3, 4), torch.zeros(3, 4))
    assert float(out) == 0.0


def test_ghm_half_pred_is_computed_in_float32():
    """Half pred: g, the bins and the weights (T / count can exceed float16's range for a
    RetinaNet batch) are float32; the result is in pred's dtype."""
    gen = _gen(7)
    pred = (torch.randn(20000, 8, generator=gen) * 4).half()
    target = torch.randint(0, 9, (20000,), generator=gen)
    got = GHMC()(pred, target)
    assert got.dtype == torch.float16 and torch.isfinite(got)
    torch.testing.assert_close(got.float(), GHMC()(pred.float(), target), rtol=1e-3, atol=0)
    for dtype in (torch.float16, torch.bfloat16):
        p, t, w = _ghmr_batch(2)
        out = GHMR()(p.to(dtype), t, w)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), GHMR()(p.to(dtype).float(), t, w),
                                   rtol=torch.finfo(dtype).eps, atol=0)
        p, labels, w = _seesaw_batch(2)
        out = SeesawLoss(num_classes=C, return_dict=False)(p.to(dtype), labels, w)
        assert out.dtype == dtype
        want = SeesawLoss(num_classes=C, return_dict=False)(p.to(dtype).float(), labels, w)
        torch.testing.assert_close(out.float(), want, rtol=torch.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize('make,batch', [
    (lambda: SeesawLoss(num_classes=C, return_dict=False), lambda: _seesaw_batch(1)),
    (lambda: GHMC(momentum=0.75), lambda: _ghmc_batch(1)),
    (lambda: GHMR(momentum=0.75), lambda: _ghmr_batch(1))], ids=['seesaw', 'ghmc', 'ghmr'])
@pytest.mark.parametrize('where', ['pred', 'weight'])
def test_nan_in_nan_out_and_state_untouched(make, batch, where):
    loss = make()
    loss(*batch())  # some state first
    state = {k: v.clone() for k, v in loss.named_buffers()}
    pred, target, weight = batch()
    if where == 'pred':
        pred = pred.clone()
        pred[1, 1] = NAN
    else:
        weight = weight.clone()
        weight.view(-1)[1] = NAN
    pred.requires_grad_()
    out = loss(pred, target, weight)
    assert torch.isnan(out)
    out.backward()
    assert not torch.isfinite(pred.grad).all()
    for key, value in loss.named_buffers():
        assert torch.equal(value, state[key]), key


def test_empty_input_gives_zero_in_graph():
    cases = [(SeesawLoss(num_classes=C, return_dict=False), torch.zeros(0, C + 2),
              torch.zeros(0, dtype=torch.long)),
             (GHMC(momentum=0.5), torch.zeros(0, C), torch.zeros(0, dtype=torch.long)),
             (GHMR(momentum=0.5), torch.zeros(0, 4), torch.zeros(0, 4))]
    for loss, pred, target in cases:
        pred.requires_grad_()
        out = loss(pred, target)
        assert float(out.detach()) == 0.0 and out.requires_grad
        out.backward()


def test_gradcheck_float64():
    gen = _gen(3)
    pred = torch.randn(4, C + 2, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, C, 1])
    seesaw = SeesawLoss(num_classes=C, q=0.0, return_dict=False).eval()  # q: detached factor
    seesaw.cum_samples.copy_(torch.tensor([50.0, 5, 20, 1, 0, 80]))
    assert torch.autograd.gradcheck(lambda p: seesaw(p, labels), (pred,))
    pred = torch.randn(4, C, generator=gen, dtype=torch.float64, requires_grad=True)
    ghmc = GHMC(bins=5, momentum=0.5).eval()
    assert torch.autograd.gradcheck(lambda p: ghmc(p, torch.tensor([0, 1, C, 3])), (pred,))
    pred = (torch.randn(3, 4, generator=gen, dtype=torch.float64) * 0.05).requires_grad_()
    ghmr = GHMR(bins=5).eval()
    assert torch.autograd.gradcheck(lambda p: ghmr(p, torch.zeros_like(p)), (pred,))


# ------------------------------------------------------------------- state and resume
@pytest.mark.parametrize('make,batch', [
    (lambda: SeesawLoss(num_classes=C, return_dict=False), _seesaw_batch),
    (lambda: GHMC(momentum=0.75), _ghmc_batch),
    (lambda: GHMR(momentum=0.75), _ghmr_batch)], ids=['seesaw', 'ghmc', 'ghmr'])
def test_state_dict_resume_continues_identically(make, batch, tmp_path):
    straight = make()
    for step in range(3):
        straight(*batch(step))
    first = make()
    for step in range(2):
        first(*batch(step))
    torch.save(first.state_dict(), tmp_path / 'ckpt.pth')
    resumed = make()
    resumed.load_state_dict(torch.load(tmp_path / 'ckpt.pth'))
    torch.testing.assert_close(resumed(*batch(2)), first(*batch(2)))
    for (k, a), (_, b) in zip(resumed.named_buffers(), straight.named_buffers()):
        assert torch.equal(a, b), k
    # mmdet's checkpoints load too (same buffer names)
    theirs = {'SeesawLoss': lambda: mmdet_losses_mmdet.SeesawLoss(num_classes=C),
              'GHMC': lambda: mmdet_losses_mmdet.GHMC(momentum=0.75),
              'GHMR': lambda: mmdet_losses_mmdet.GHMR(momentum=0.75)}[type(first).__name__]()
    make().load_state_dict(theirs.state_dict())


def test_non_finite_checkpoint_state_is_restored():
    loss = GHMC(momentum=0.5)
    state = loss.state_dict()
    state['acc_sum'] = torch.full((10,), NAN)
    with pytest.warns(RuntimeWarning, match='acc_sum'):
        loss.load_state_dict(state)
    assert torch.equal(loss.acc_sum, torch.zeros(10))


def test_eval_mode_computes_like_training_without_storing():
    train, evaluate = SeesawLoss(num_classes=C), SeesawLoss(num_classes=C).eval()
    batch = _seesaw_batch(5)
    torch.testing.assert_close(evaluate(*batch), train(*batch))
    assert torch.equal(evaluate.cum_samples, torch.zeros(C + 1))
    train, evaluate = GHMC(momentum=0.5), GHMC(momentum=0.5).eval()
    batch = _ghmc_batch(5)
    torch.testing.assert_close(evaluate(*batch), train(*batch))
    assert torch.equal(evaluate.acc_sum, torch.zeros(10))


# ---------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize('make,name,error', [
    (lambda: SeesawLoss(use_sigmoid=True), 'use_sigmoid', ValueError),
    (lambda: SeesawLoss(p=-1.0), 'p', ValueError),
    (lambda: SeesawLoss(q=NAN), 'q', ValueError),
    (lambda: SeesawLoss(eps=0.0), 'eps', ValueError),
    (lambda: SeesawLoss(num_classes=0), 'num_classes', ValueError),
    (lambda: SeesawLoss(num_classes='3'), 'num_classes', TypeError),
    (lambda: GHMC(use_sigmoid=False), 'use_sigmoid', ValueError),
    (lambda: GHMC(bins=0), 'bins', ValueError),
    (lambda: GHMC(bins=2.5), 'bins', ValueError),
    (lambda: GHMC(momentum=1.0), 'momentum', ValueError),  # mmdet: acc_sum stays 0 -> inf
    (lambda: GHMC(momentum='0.5'), 'momentum', TypeError),
    (lambda: GHMR(mu=0.0), 'mu', ValueError),  # mmdet: NaN gradient at d = 0
    (lambda: GHMR(momentum=-0.1), 'momentum', ValueError),
    (lambda: GHMR(loss_weight=INF), 'loss_weight', ValueError)])
def test_bad_arguments_are_refused(make, name, error):
    with pytest.raises(error, match=name):
        make()


def test_bad_inputs_are_refused():
    loss = SeesawLoss(num_classes=C)
    with pytest.raises(ValueError, match='channels'):
        loss(torch.randn(3, C + 1), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='target'):
        loss(torch.randn(3, C + 2), torch.tensor([0, 1, C + 1]))
    with pytest.raises(ValueError, match='weight'):
        loss(torch.randn(3, C + 2), torch.tensor([0, 1, 2]), torch.ones(2))
    assert torch.equal(loss.cum_samples, torch.zeros(C + 1))  # refused calls count nothing
    with pytest.raises(ValueError, match='target'):
        GHMC()(torch.randn(3, C), torch.tensor([0, 1, C + 1]))
    with pytest.raises(ValueError, match='target'):
        GHMR()(torch.randn(3, 4), torch.randn(3, 3))


def test_catalogue_lists_the_balancing_family():
    from mmdet_losses.catalogue import catalogue
    entries = {e.name: e for e in catalogue()}
    for name in ('SeesawLoss', 'GHMC', 'GHMR'):
        assert entries[name].family == 'balancing'
        assert 'Reference' not in entries[name].paper  # the paper itself, found
        assert 'arXiv' in entries[name].paper
    assert mmdet_losses.functional.ghmc_loss is F.ghmc_loss


# ------------------------------------------------------------------------------ DDP
WORLD = 2
TIMEOUT_S = 60


def _ddp_labels():
    return [_seesaw_batch(step, n=8)[1] for step in range(3)]


def _ddp_worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        result = {}
        for sync in (True, False):
            loss = SeesawLoss(num_classes=C, return_dict=False, sync=sync)
            losses = []
            for step, labels in enumerate(_ddp_labels()):
                pred = _seesaw_batch(10 + step, n=8)[0]
                share = slice(rank * 4, rank * 4 + 4)
                losses.append(loss(pred[share], labels[share]).detach())
            result[sync] = dict(counts=loss.cum_samples.clone(), losses=torch.stack(losses))
        eqlv2 = mmdet_losses.EQLV2Loss(num_classes=C, use_distributed=True)
        for step in range(3):
            pred, labels, _ = _eqlv2_batch(20 + step, n=8)
            eqlv2(pred[rank * 4:rank * 4 + 4], labels[rank * 4:rank * 4 + 4])
        result['eqlv2'] = {k: v.clone() for k, v in eqlv2.named_buffers()}
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_state_seesaw_counts_and_eqlv2_statistics(tmp_path):
    """Seesaw (sync, default): the global counts on every rank; sync=False: mmdet's per-rank
    counts. EQLv2 with use_distributed: every rank holds the whole batch's statistics."""
    if not dist.is_available():
        pytest.skip('torch.distributed is not available')
    context = mp.start_processes(_ddp_worker, args=(WORLD, _free_port(), str(tmp_path)),
                                 nprocs=WORLD, join=False, start_method='spawn')
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f'the {WORLD} DDP processes did not finish in {TIMEOUT_S} s')
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD)]
    labels = _ddp_labels()
    total = sum(torch.bincount(lab, minlength=C + 1).float() for lab in labels)
    for rank in range(WORLD):
        # sync (default): the counts of the whole batch, the same on each rank
        assert torch.equal(ranks[rank][True]['counts'], total)
        # sync=False: mmdet's per-rank counts
        mine = sum(torch.bincount(lab[rank * 4:rank * 4 + 4], minlength=C + 1).float()
                   for lab in labels)
        assert torch.equal(ranks[rank][False]['counts'], mine)
        # each rank's loss is the functional form with the global counts so far
        counts = torch.zeros(C + 1)
        for step, lab in enumerate(labels):
            counts = counts + torch.bincount(lab, minlength=C + 1).float()
            pred = _seesaw_batch(10 + step, n=8)[0][rank * 4:rank * 4 + 4]
            want = F.seesaw_loss(pred, lab[rank * 4:rank * 4 + 4], cum_samples=counts)
            torch.testing.assert_close(ranks[rank][True]['losses'][step], want)
    whole = mmdet_losses.EQLV2Loss(num_classes=C)
    for step in range(3):
        whole(*_eqlv2_batch(20 + step, n=8)[:2])
    for rank in range(WORLD):
        for key, value in whole.named_buffers():
            torch.testing.assert_close(ranks[rank]['eqlv2'][key], value)


# ------------------------------------------------------------------------------- EQLv2
def _eqlv2_batch(seed, n=20, dtype=torch.float32):
    gen = _gen(seed)
    pred = (torch.randn(n, C + 1, generator=gen) * 2).to(dtype)
    labels = torch.multinomial(torch.tensor([8.0, 4, 2, 1, 0.5, 6]), n, replacement=True,
                               generator=gen)
    return pred, labels, torch.ones(n, dtype=dtype)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_eqlv2_equals_mmdet_over_steps(dtype):
    ours = mmdet_losses.EQLV2Loss(num_classes=C)
    theirs = mmdet_losses_mmdet.EQLV2Loss(num_classes=C)
    for step in range(5):
        pred, labels, weight = _eqlv2_batch(step, dtype=dtype)
        # mmdet's heads pass label weights (all 1) and avg_factor: mmdet ignores both
        lo, lt, go, gt = _both(ours, theirs, pred, labels, weight, avg_factor=float(len(labels)))
        torch.testing.assert_close(lo.double(), lt.double(), **TOL)
        torch.testing.assert_close(go.double(), gt.double(), **TOL)
        for key in ('pos_grad', 'neg_grad', 'pos_neg'):
            torch.testing.assert_close(getattr(ours, key), getattr(theirs, key), **TOL)
    assert not torch.allclose(ours.pos_neg, torch.full((C,), 100.0))  # the state moved
    pred = _eqlv2_batch(9)[0]
    torch.testing.assert_close(ours.get_activation(pred), theirs.get_activation(pred.clone()))
    assert ours.get_channel_num(C) == theirs.get_channel_num(C)


def test_eqlv2_formula_written_plainly():
    pos_neg = torch.tensor([2.0, 0.1])
    loss = mmdet_losses.EQLV2Loss(num_classes=2, gamma=12.0, mu=0.8, alpha=4.0).eval()
    loss.pos_neg.copy_(pos_neg)
    pred = torch.tensor([[1.0, -0.5, 0.2], [0.3, 2.0, -1.0]])
    labels = torch.tensor([1, 2])
    q = [1 / (1 + torch.exp(-12.0 * (v - 0.8))) for v in pos_neg] + [torch.tensor(1.0)]
    total = 0.0
    for i in range(2):
        for j in range(3):
            t = float(labels[i] == j)
            w = (1 + 4.0 * (1 - q[j])) if t else q[j]
            p = torch.sigmoid(pred[i, j])
            total = total - w * (t * torch.log(p) + (1 - t) * torch.log(1 - p))
    torch.testing.assert_close(loss(pred, labels), total / 2)
    assert torch.equal(loss.pos_neg, pos_neg)  # eval: not updated


def test_eqlv2_state_nan_resume_and_args(tmp_path):
    loss = mmdet_losses.EQLV2Loss(num_classes=C)
    loss(*_eqlv2_batch(0))
    state = {k: v.clone() for k, v in loss.named_buffers()}
    pred, labels, weight = _eqlv2_batch(1)
    pred[2, 3] = NAN
    pred.requires_grad_()
    out = loss(pred, labels, weight)
    assert torch.isnan(out)
    out.backward()
    assert not torch.isfinite(pred.grad).all()
    for key, value in loss.named_buffers():
        assert torch.equal(value, state[key]), key
    torch.save(loss.state_dict(), tmp_path / 'eqlv2.pth')
    resumed = mmdet_losses.EQLV2Loss(num_classes=C)
    resumed.load_state_dict(torch.load(tmp_path / 'eqlv2.pth'))
    batch = _eqlv2_batch(2)
    torch.testing.assert_close(resumed(*batch), loss(*batch))
    for (k, a), (_, b) in zip(resumed.named_buffers(), loss.named_buffers()):
        assert torch.equal(a, b), k
    for kwargs, name, error in ((dict(use_sigmoid=False), 'use_sigmoid', ValueError),
                                (dict(gamma=NAN), 'gamma', ValueError),
                                (dict(num_classes=0), 'num_classes', ValueError),
                                (dict(class_weight=[1.0, NAN]), 'class_weight', ValueError)):
        with pytest.raises(error, match=name):
            mmdet_losses.EQLV2Loss(**kwargs)
    with pytest.raises(ValueError, match='num_classes'):
        mmdet_losses.EQLV2Loss(num_classes=C)(torch.randn(2, C), torch.tensor([0, 1]))


def test_eqlv2_empty_half_and_gradcheck():
    loss = mmdet_losses.EQLV2Loss(num_classes=C)
    pred = torch.zeros(0, C + 1, requires_grad=True)
    out = loss(pred, torch.zeros(0, dtype=torch.long))
    assert float(out.detach()) == 0.0 and out.requires_grad
    assert torch.equal(loss.pos_neg, torch.full((C,), 100.0))
    for dtype in (torch.float16, torch.bfloat16):
        pred, labels, _ = _eqlv2_batch(3)
        got = mmdet_losses.EQLV2Loss(num_classes=C)(pred.to(dtype), labels)
        want = mmdet_losses.EQLV2Loss(num_classes=C)(pred.to(dtype).float(), labels)
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want, rtol=torch.finfo(dtype).eps, atol=0)
    module = mmdet_losses.EQLV2Loss(num_classes=C).eval()
    module.pos_neg.copy_(torch.tensor([2.0, 0.5, 0.9, 0.1, 0.75]))
    pred = _eqlv2_batch(4, n=4, dtype=torch.float64)[0].requires_grad_()
    labels = torch.tensor([0, 3, C, 1])
    assert torch.autograd.gradcheck(lambda p: module(p, labels), (pred,))


# -------------------------------------------------------------- MultiPosCrossEntropyLoss
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_multi_pos_equals_mmdet(dtype):
    ours = mmdet_losses.MultiPosCrossEntropyLoss()
    theirs = mmdet_losses_mmdet.MultiPosCrossEntropyLoss()
    for seed in range(4):
        gen = _gen(seed)
        pred = (torch.randn(8, 6, generator=gen) * 3).to(dtype)
        target = (torch.rand(8, 6, generator=gen) > 0.6).to(dtype)
        target[0], target[1] = 1, 0  # rows without negatives / positives: loss 0
        weight = torch.rand(8, generator=gen).to(dtype)
        for kwargs in (dict(reduction_override='none'), dict(), dict(avg_factor=3.0),
                       dict(reduction_override='sum')):
            lo, lt, go, gt = _both(ours, theirs, pred, target, weight, **kwargs)
            torch.testing.assert_close(lo.double(), lt.double(), **TOL)
            torch.testing.assert_close(go.double(), gt.double(), **TOL)


def test_multi_pos_formula_edges_and_gradcheck():
    pred = torch.tensor([[2.0, 0.5, -1.0, 0.3]])
    target = torch.tensor([[1.0, 0.0, 1.0, -1.0]])  # -1: ignored
    pairs = [(0, 1), (2, 1)]  # (positive, negative)
    want = torch.log(1 + sum(torch.exp(pred[0, n] - pred[0, p]) for p, n in pairs))
    torch.testing.assert_close(mmdet_losses.MultiPosCrossEntropyLoss()(pred, target), want)
    # a row without negatives: 0 with a zero (not NaN) gradient
    pred = torch.randn(2, 3, requires_grad=True)
    out = mmdet_losses.MultiPosCrossEntropyLoss()(pred, torch.ones(2, 3))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.equal(pred.grad, torch.zeros(2, 3))
    # NaN in an ignored entry still shows (contract rule 2)
    pred = torch.tensor([[2.0, 0.5, NAN]])
    assert torch.isnan(mmdet_losses.MultiPosCrossEntropyLoss()(
        pred, torch.tensor([[1.0, 0.0, -1.0]])))
    pred = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(4, 5) > 0.5).double()
    target[:, 0], target[:, 1] = 1, 0
    assert torch.autograd.gradcheck(
        lambda p: mmdet_losses.MultiPosCrossEntropyLoss()(p, target), (pred,))
    with pytest.raises(ValueError, match='target'):
        mmdet_losses.MultiPosCrossEntropyLoss()(torch.randn(2, 3), torch.ones(2, 4))


def test_seesaw_in_mmdet_bbox_head_equals_mmdet():
    """mmdet's RoI BBoxHead sizes its classifier by get_cls_channels and logs the dict of
    losses and accuracies: with the prefixed type, the same numbers as with mmdet's."""
    from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
    from mmdet.utils import register_all_modules
    register_all_modules()
    heads = []
    for prefix in ('mmdet_losses.', ''):
        torch.manual_seed(0)
        heads.append(Shared2FCBBoxHead(
            in_channels=2, fc_out_channels=8, roi_feat_size=2, num_classes=C,
            reg_class_agnostic=True,
            loss_cls=dict(type=prefix + 'SeesawLoss', p=0.8, q=2.0, num_classes=C,
                          loss_weight=1.0)))
    assert heads[0].fc_cls.out_features == C + 2
    assert isinstance(heads[0].loss_cls, SeesawLoss)
    gen = _gen(11)
    n = 16
    cls_score = torch.randn(n, C + 2, generator=gen)
    bbox_pred = torch.randn(n, 4, generator=gen)
    rois = torch.cat((torch.zeros(n, 1), torch.rand(n, 2, generator=gen) * 10,
                      10 + torch.rand(n, 2, generator=gen) * 10), 1)
    labels = torch.randint(0, C + 1, (n,), generator=gen)
    args = (cls_score, bbox_pred, rois, labels, torch.ones(n), torch.randn(n, 4, generator=gen),
            torch.ones(n, 4))
    ours, theirs = heads[0].loss(*args), heads[1].loss(*args)
    assert set(ours) == set(theirs) >= {'loss_cls_objectness', 'loss_cls_classes',
                                         'acc_objectness', 'acc_classes', 'loss_bbox'}
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key].reshape(ours[key].shape))
    # and the test-time scores go through get_activation
    torch.testing.assert_close(heads[0].loss_cls.get_activation(cls_score),
                               heads[1].loss_cls.get_activation(cls_score))


@pytest.mark.parametrize('make,inputs', [
    (lambda: SeesawLoss(num_classes=C), lambda: _seesaw_batch(0)),
    (lambda: GHMC(momentum=0.5), lambda: _ghmc_batch(0)),
    (lambda: GHMC(momentum=0.5), lambda: _ghmc_batch(0, dense=True)),
    (lambda: GHMR(momentum=0.5), lambda: _ghmr_batch(0)),
    (lambda: mmdet_losses.EQLV2Loss(num_classes=C), lambda: _eqlv2_batch(0)),
    (lambda: mmdet_losses.MultiPosCrossEntropyLoss(),
     lambda: (torch.randn(4, 6), (torch.rand(4, 6) > 0.5).float(), torch.ones(4)))],
    ids=['seesaw', 'ghmc', 'ghmc-dense', 'ghmr', 'eqlv2', 'multipos'])
def test_training_step_reads_no_tensor_value(make, inputs):
    """The forward (state update included) and backward run on meta tensors, which have no
    values: nothing on the training path reads one (no .item(), no `if tensor`), so none
    synchronises with an accelerator."""
    loss = make().train().to('meta')
    pred, target, weight = (t.to('meta') for t in inputs())
    pred.requires_grad_()
    out = loss(pred, target, weight)
    out = sum(out.values()) if isinstance(out, dict) else out
    out.backward()
    assert pred.grad.shape == pred.shape
