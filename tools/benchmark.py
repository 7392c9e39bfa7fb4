#!/usr/bin/env python
"""Forward+backward time and peak memory of a loss, side by side with its reference.

Usage:
    python tools/benchmark.py --list
    python tools/benchmark.py --loss SmoothL1Loss
    python tools/benchmark.py --loss FocalLoss --sizes 100000 --repeats 20
    python tools/benchmark.py --loss CIoULoss --device cuda --dtype float16

Each repeat times our loss and the reference (mmdet's loss of the same name, where mmdet has
one) one after the other on the same inputs, so drift of the machine hits both; the table
reports the median of each and the ratio reference/ours (above 1: ours is faster). Peak memory
is the highest total of the tensors allocated during one forward+backward, read from
PyTorch's profiler on the CPU and from the CUDA allocator on a GPU.
"""
import argparse
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault('KINETO_LOG_LEVEL', '5')  # keep the profiler's start/stop lines quiet
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cases import discover  # noqa: E402


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _clear_grads(args):
    for a in args:
        if isinstance(a, torch.Tensor) and a.requires_grad:
            a.grad = None


def _step(module, args, kwargs):
    """One forward+backward; returns nothing, so memory is freed after it."""
    loss = module(*args, **kwargs)
    loss.backward()


def time_once(module, args, kwargs, device) -> float:
    _clear_grads(args)  # outside the measurement: freeing the last gradient is not our cost
    _sync(device)
    start = time.perf_counter()
    _step(module, args, kwargs)
    _sync(device)
    return time.perf_counter() - start


def peak_memory(module, args, kwargs, device) -> int:
    """Peak bytes allocated during one forward+backward, beyond what existed before it."""
    _clear_grads(args)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _step(module, args, kwargs)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            _step(module, args, kwargs)
    events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]']
    current = peak = 0
    for _, nbytes in sorted(events):
        current += nbytes
        peak = max(peak, current)
    return peak


def _fmt_bytes(n: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(n) < 1024 or unit == 'GiB':
            return f'{n:.1f} {unit}'
        n /= 1024


def run_case(case, size, device, dtype, repeats, warmup, progress):
    args, kwargs = case.make_inputs(size, device, dtype)
    contenders = [('ours', case.ours().to(device), args, kwargs)]
    if case.reference is not None:
        ref_args, ref_kwargs = (case.make_reference_inputs(args, kwargs)
                                if case.make_reference_inputs else (args, kwargs))
        contenders.append(('reference', case.reference().to(device), ref_args, ref_kwargs))
    times = {label: [] for label, *_ in contenders}
    for _ in range(warmup):
        for label, module, a, k in contenders:
            time_once(module, a, k, device)
    for _ in range(repeats):
        for label, module, a, k in contenders:  # interleaved: drift hits both alike
            times[label].append(time_once(module, a, k, device))
        progress.update(1)
    result = {}
    for label, module, a, k in contenders:
        result[label] = (statistics.median(times[label]), peak_memory(module, a, k, device))
    return result


def main(argv=None):
    cases = discover()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--loss', action='append',
                        help='loss class name (repeatable); see --list. Default: all')
    parser.add_argument('--sizes', type=int, nargs='+',
                        help="problem sizes (the case's unit: elements, anchors, box pairs)")
    parser.add_argument('--repeats', type=int, default=15, help='timed runs per contender')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs first')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--dtype', default='float32',
                        choices=['float32', 'float16', 'bfloat16', 'float64'])
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    parser.add_argument('--list', action='store_true', help='list the cases and exit')
    opts = parser.parse_args(argv)

    if opts.list:
        for name in sorted(cases):
            c = cases[name]
            print(f'{name:28s} reference: {c.reference_name or "-":34s} '
                  f'sizes: {", ".join(map(str, c.sizes))} {c.unit}')
        return 0
    names = opts.loss or sorted(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        parser.error(f'unknown loss {unknown}; known: {", ".join(sorted(cases))}')
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    dtype = getattr(torch, opts.dtype)

    from tqdm import tqdm
    jobs = [(cases[n], s) for n in names for s in (opts.sizes or cases[n].sizes)]
    rows = []
    with tqdm(total=len(jobs) * opts.repeats, desc='benchmark', unit='run',
              file=sys.stderr) as progress:
        for case, size in jobs:
            progress.set_postfix_str(f'{case.name} @ {size}')
            res = run_case(case, size, device, dtype, opts.repeats, opts.warmup, progress)
            rows.append((case, size, res))

    print(f'\ndevice: {device} ({torch.get_num_threads()} threads), dtype: {opts.dtype}, '
          f'torch {torch.__version__}, median of {opts.repeats} interleaved runs, '
          f'forward+backward')
    header = ('| loss | size | ours ms | reference | ref ms | speed-up | ours peak | '
              'ref peak | memory ratio |')
    print(header)
    print('|' + '---|' * 9)
    for case, size, res in rows:
        t_ours, m_ours = res['ours']
        if 'reference' in res:
            t_ref, m_ref = res['reference']
            print(f'| {case.name} | {size:,} {case.unit} | {t_ours * 1e3:.2f} | '
                  f'{case.reference_name} | {t_ref * 1e3:.2f} | {t_ref / t_ours:.2f}x | '
                  f'{_fmt_bytes(m_ours)} | {_fmt_bytes(m_ref)} | '
                  f'{m_ours / max(m_ref, 1):.2f} |')
        else:
            print(f'| {case.name} | {size:,} {case.unit} | {t_ours * 1e3:.2f} | - | - | - | '
                  f'{_fmt_bytes(m_ours)} | - | - |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
