#!/usr/bin/env python
"""Forward+backward time and peak memory of a loss, side by side with its reference.

Usage:
    python tools/benchmark.py --list
    python tools/benchmark.py --loss SmoothL1Loss
    python tools/benchmark.py --loss FocalLoss --sizes 100000 --repeats 20
    python tools/benchmark.py --loss CIoULoss --device cuda --dtype float16
    python tools/benchmark.py --loss CIoULoss --sizes 1000000 --compile

Each repeat times our loss and the reference (mmdet's loss of the same name, where mmdet has
one) one after the other on the same inputs, so drift of the machine hits both; the table
reports the median of each and the ratio reference/ours (above 1: ours is faster). Peak memory
is the highest total of the tensors allocated during one forward+backward, read from
PyTorch's profiler on the CPU and from the CUDA allocator on a GPU.

With ``--compile`` the table compares our loss in eager mode with the same module under
``torch.compile`` (``--backend``, inductor by default): forward+backward, interleaved as
above, plus the time of the first compiled call (tracing and compilation included) and the
number of graph breaks ``torch._dynamo.explain`` finds in the forward.

On Linux, glibc hands large freed buffers back to the system, and a process whose steps then
fault their pages in again runs several ms slower (bimodal figures for the (N, 80) focal
buffers, hitting either contender). For stable figures keep them in the heap:
``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296``; and
``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`` makes the first compiled call pay a cold compilation.
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


def run_compiled_case(case, size, device, dtype, repeats, warmup, backend, progress):
    """Eager and ``torch.compile``d forward+backward of our loss on the same inputs: median
    times, the first compiled call's time (compilation included) and the forward's graph
    breaks."""
    args, kwargs = case.make_inputs(size, device, dtype)
    eager = case.ours().to(device)
    torch._dynamo.reset()  # every case compiles from scratch: its first call is comparable
    compiled = torch.compile(eager, backend=backend)
    first = time_once(compiled, args, kwargs, device)
    breaks = torch._dynamo.explain(eager)(*args, **kwargs).graph_break_count
    times = {'eager': [], 'compiled': []}
    for _ in range(warmup):
        time_once(eager, args, kwargs, device)
        time_once(compiled, args, kwargs, device)
    for _ in range(repeats):
        times['eager'].append(time_once(eager, args, kwargs, device))
        times['compiled'].append(time_once(compiled, args, kwargs, device))
        progress.update(1)
    return dict(eager=statistics.median(times['eager']),
                compiled=statistics.median(times['compiled']), first=first, breaks=breaks)


def print_compiled(rows, device, opts):
    print(f'\ndevice: {device} ({torch.get_num_threads()} threads), dtype: {opts.dtype}, '
          f'torch {torch.__version__}, backend {opts.backend}, median of {opts.repeats} '
          f'interleaved runs, forward+backward')
    print('| loss | size | eager ms | compiled ms | compiled speed-up | first compiled call s '
          '| graph breaks |')
    print('|' + '---|' * 7)
    for case, size, res in rows:
        print(f'| {case.name} | {size:,} {case.unit} | {res["eager"] * 1e3:.2f} | '
              f'{res["compiled"] * 1e3:.2f} | {res["eager"] / res["compiled"]:.2f}x | '
              f'{res["first"]:.2f} | {res["breaks"]} |')


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
    parser.add_argument('--compile', action='store_true',
                        help='compare our loss eager with torch.compile instead of the reference')
    parser.add_argument('--backend', default='inductor', help="torch.compile's backend")
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
            if opts.compile:
                res = run_compiled_case(case, size, device, dtype, opts.repeats, opts.warmup,
                                        opts.backend, progress)
            else:
                res = run_case(case, size, device, dtype, opts.repeats, opts.warmup, progress)
            rows.append((case, size, res))

    if opts.compile:
        print_compiled(rows, device, opts)
        return 0

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
