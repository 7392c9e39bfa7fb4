"""weight_reduce_loss / reduce_loss against mmdet's utility and hand-computed values."""
import pytest
import torch
from _helpers import assert_zero_in_graph

from mmdet_losses import reduce_loss, weight_reduce_loss
from mmdet_losses.reduction import reduce_weighted_sum


@pytest.mark.parametrize('reduction,expected', [('none', [1.0, 2.0, 6.0]), ('sum', 9.0),
                                                ('mean', 3.0)])
def test_reduce_loss_values(reduction, expected):
    out = reduce_loss(torch.tensor([1.0, 2.0, 6.0]), reduction)
    torch.testing.assert_close(out, torch.tensor(expected))


@pytest.mark.parametrize('weight', [None, 'full', 'row'])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('avg_factor', [None, 7.0, 'tensor'])
def test_weight_reduce_loss_matches_mmdet(weight, reduction, avg_factor):
    from mmdet.models.losses.utils import weight_reduce_loss as mmdet_weight_reduce_loss
    gen = torch.Generator().manual_seed(0)
    loss = torch.rand(5, 3, generator=gen)
    w = {None: None, 'full': torch.rand(5, 3, generator=gen),
         'row': torch.rand(5, 1, generator=gen)}[weight]
    avg = torch.tensor(4.0) if avg_factor == 'tensor' else avg_factor
    if avg is not None and reduction == 'sum':
        with pytest.raises(ValueError, match="'sum'"):
            weight_reduce_loss(loss, w, reduction, avg)
        return
    ours = weight_reduce_loss(loss, w, reduction, avg)
    ref = mmdet_weight_reduce_loss(loss, w, reduction, avg)
    torch.testing.assert_close(ours, ref)


def test_avg_factor_hand_values():
    loss = torch.tensor([1.0, 2.0, 3.0])
    weight = torch.tensor([1.0, 0.0, 1.0])
    out = weight_reduce_loss(loss, weight, 'mean', avg_factor=2)
    assert abs(float(out) - 2.0) < 1e-6
    # avg_factor=0 divides by eps, as mmdet does, rather than giving NaN/inf for a zero sum
    zero = weight_reduce_loss(torch.zeros(3), None, 'mean', avg_factor=0)
    assert float(zero) == 0.0


@pytest.mark.parametrize('reduction', ['mean', 'sum'])
@pytest.mark.parametrize('avg_factor', [None, 3.0])
def test_empty_loss_is_a_zero_in_the_graph(reduction, avg_factor):
    if reduction == 'sum' and avg_factor is not None:
        return
    leaf = torch.zeros(0, 4, requires_grad=True)
    out = weight_reduce_loss(leaf * 2, None, reduction, avg_factor)
    assert_zero_in_graph(out, leaf)


def test_all_zero_weight_is_a_zero_in_the_graph():
    leaf = torch.rand(4, 2, requires_grad=True)
    out = weight_reduce_loss(leaf.square(), torch.zeros(4, 2), 'mean')
    assert_zero_in_graph(out, leaf)


def test_empty_mean_without_weight_differs_from_nan():
    out = reduce_loss(torch.zeros(0), 'mean')
    assert torch.isfinite(out) and float(out) == 0.0


@pytest.mark.parametrize('call,error,match', [
    (lambda: reduce_loss(torch.ones(2), 'avg'), ValueError, r"reduction must be one of .* got 'avg'"),
    (lambda: weight_reduce_loss(torch.ones(2), None, 'sum', 2.0), ValueError, "'sum'"),
    (lambda: weight_reduce_loss(torch.ones(2), None, 'mean', -1.0), ValueError,
     r'avg_factor must be >= 0, got -1.0'),
    (lambda: weight_reduce_loss(torch.ones(2), None, 'mean', torch.tensor(-2.0)), ValueError,
     r'avg_factor must be >= 0'),
    (lambda: weight_reduce_loss(torch.ones(2), None, 'mean', torch.ones(2)), ValueError,
     r'avg_factor must be a scalar'),
    (lambda: weight_reduce_loss(torch.ones(2), None, 'mean', 'two'), TypeError,
     r'avg_factor must be a number or a scalar tensor, got str'),
    (lambda: weight_reduce_loss(torch.ones(4, 2), torch.ones(3), 'mean'), ValueError,
     r'weight must broadcast to the loss shape \(4, 2\), got \(3,\)'),
    (lambda: weight_reduce_loss(torch.ones(4), torch.ones(4, 1), 'mean'), ValueError,
     r'weight must broadcast to the loss shape \(4,\), got \(4, 1\)'),
    (lambda: weight_reduce_loss(torch.ones(4), [1.0] * 4, 'mean'), TypeError,
     r'weight must be a torch.Tensor, got list'),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize('reduction,avg_factor', [('mean', None), ('sum', None), ('mean', 4.0),
                                                  ('mean', 0)])
def test_reduce_weighted_sum_finishes_weight_reduce_loss(reduction, avg_factor):
    """What the fused kernels call with the sum they computed equals reducing the loss."""
    loss = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    weight = torch.tensor([[1.0, 0.5], [0.0, 2.0]])
    total = (loss * weight).sum()
    torch.testing.assert_close(reduce_weighted_sum(total, loss.numel(), reduction, avg_factor),
                               weight_reduce_loss(loss, weight, reduction, avg_factor))


def test_reduce_weighted_sum_hand_values_and_errors():
    assert float(reduce_weighted_sum(torch.tensor(14.0), 4)) == 3.5
    assert float(reduce_weighted_sum(torch.tensor(0.0), 0)) == 0.0  # empty: 0, not 0/0
    with pytest.raises(ValueError, match="got 'none'"):
        reduce_weighted_sum(torch.tensor(1.0), 1, 'none')
    with pytest.raises(ValueError, match="'sum'"):
        reduce_weighted_sum(torch.tensor(1.0), 1, 'sum', 2.0)
    with pytest.raises(ValueError, match=r'avg_factor must be >= 0, got -1'):
        reduce_weighted_sum(torch.tensor(1.0), 1, 'mean', -1)
