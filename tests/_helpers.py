"""Helpers shared by the test modules (``from _helpers import ...``)."""
import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def mmdet_loss(name: str, **kwargs):
    """mmdet's loss class ``name`` built with ``kwargs``: the independent reference."""
    from mmdet.models import losses
    return getattr(losses, name)(**kwargs)


def double_leaf(x: torch.Tensor) -> torch.Tensor:
    """A float64 leaf that requires grad, for torch.autograd.gradcheck."""
    return x.detach().double().requires_grad_(True)


def assert_finite(*tensors) -> None:
    for t in tensors:
        assert t is not None, 'expected a tensor (e.g. a gradient), got None'
        assert torch.isfinite(t.float()).all(), f'non-finite values: {t}'


def assert_zero_in_graph(loss: torch.Tensor, leaf: torch.Tensor) -> None:
    """``loss`` is exactly 0, connected to ``leaf`` (backward runs and gives a zero grad)."""
    assert loss.requires_grad, 'the loss left the autograd graph'
    assert float(loss.detach().float().sum()) == 0.0
    loss.sum().backward()
    assert leaf.grad is not None and torch.count_nonzero(leaf.grad) == 0
