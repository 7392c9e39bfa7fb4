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


def jittered_boxes(gen, n):
    """n valid xyxy boxes and targets jittered around them (the contract tests' inputs)."""
    xy = torch.rand(n, 2, generator=gen) * 20
    wh = 1.0 + torch.rand(n, 2, generator=gen) * 10
    pred = torch.cat((xy, xy + wh), 1)
    target = pred + torch.randn(n, 4, generator=gen) * 2
    target = torch.cat((torch.minimum(target[:, :2], target[:, 2:]),
                        torch.maximum(target[:, :2], target[:, 2:])), 1)
    return pred, target


def random_pairs(n, dtype, seed=0):
    """Valid boxes and jittered targets: overlapping, disjoint, some above CIoU's gate."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 50
    wh = 0.5 + torch.rand(n, 2, generator=gen) * 20
    pred = torch.cat((xy, xy + wh), 1)
    jitter = torch.randn(n, 4, generator=gen) * torch.rand(n, 1, generator=gen) * 6
    target = pred + jitter
    target = torch.cat((torch.minimum(target[:, :2], target[:, 2:]),
                        torch.maximum(target[:, :2], target[:, 2:])), 1)
    return pred.to(dtype), target.to(dtype)


def adversarial_pairs(dtype):
    """Every case of the issue's corpus, with both orders where it matters."""
    b = [
        ([0, 0, 4, 4], [0, 0, 4, 4]),          # identical (every min/max a tie)
        ([1, 1, 1, 5], [0, 0, 4, 4]),          # zero-width pred
        ([0, 0, 4, 4], [2, 2, 2, 2]),          # point target
        ([2, 2, 2, 2], [2, 2, 2, 2]),          # identical points
        ([3, 1, 3, 6], [3, 1, 3, 6]),          # identical zero-width boxes
        ([1, 1, 5, 1], [1, 0, 5, 0]),          # two zero-height boxes
        ([4, 4, 0, 0], [0, 0, 4, 4]),          # inverted pred (x2 < x1, y2 < y1)
        ([4, 0, 0, 4], [0, 0, 4, 4]),          # inverted in x only
        ([10, 10, -10, -10], [20, 20, 30, 30]),  # inverted, centre outside
        ([1, 1, 3, 3], [0, 0, 4, 4]),          # nested, same centre
        ([0, 0, 4, 4], [1, 1, 2, 3]),          # target inside pred
        ([0, 0, 2, 8], [-3, 3, 5, 5]),         # same centre, crossing
        ([0, 0, 1, 1], [1000, 1000, 1001, 1001]),  # far apart
        ([0, 0, 1, 1], [1, 0, 2, 1]),          # sharing an edge
        ([0, 0, 1, 1], [1, 1, 2, 2]),          # sharing a corner
        ([1e4, 2e4, 6e4, 5e4], [1.5e4, 1e4, 5.5e4, 6e4]),  # huge
        ([1e4, 1e4, 1e4 + 1, 1e4 + 1], [6e4, 6e4, 6e4 + 1, 6e4 + 1]),  # huge and far
        ([0, 0, 1e-3, 1e-3], [5e-4, 5e-4, 1.5e-3, 1.5e-3]),  # tiny
        ([0, 0, 1e-3, 1e-3], [0, 0, 1e-3, 1e-3]),  # tiny identical
        ([5, 5, 5 + 1e-3, 5 + 2e-3], [5, 5, 5 + 2e-3, 5 + 1e-3]),  # tiny, same corner
    ]
    pred = torch.tensor([p for p, _ in b], dtype=dtype)
    target = torch.tensor([t for _, t in b], dtype=dtype)
    return torch.cat((pred, target)), torch.cat((target, pred))


def kernel_node(op: str) -> str:
    """The class name of the autograd node of the kernel operator ``mmdet_losses::<op>`` in an
    eager graph (the eager shortcut's Function, mmdet_losses/ops/_library.py)."""
    return f'{op}_kernelBackward'


def graph_node_names(loss):
    """The class names of every node of ``loss``'s autograd graph."""
    nodes, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            stack.extend(n for n, _ in node.next_functions)
    return {type(n).__name__ for n in nodes}
