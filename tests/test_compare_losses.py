"""tools/compare_losses.py's statistics: means over seeds with Student-t intervals, paired
differences to the best loss, and where it writes by default (no training here)."""
import math

import pytest

from _integration_utils import load_tool

compare = load_tool('compare_losses')


def _run(name, seed, mAP):
    return dict(name=name, seed=seed, ok=True, mAP=mAP, mAP_50=mAP + 0.2, mAP_75=mAP - 0.1,
                loss=0.5, seconds=1.0, curve=[])


def test_mean_interval_is_students_t_by_hand():
    mean, half = compare.mean_interval([0.1, 0.2, 0.3])
    # std 0.1, t(0.975, 2) = 4.302653 (tables): 4.302653 * 0.1 / sqrt(3)
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert math.isnan(compare.mean_interval([0.5])[1])


def test_summary_ranks_and_pairs_by_seed():
    rows = [_run('A', 0, 0.30), _run('A', 1, 0.32), _run('A', 2, 0.31),
            # B is 0.05 below A on every seed: paired, that is significant despite the spread
            _run('B', 0, 0.25), _run('B', 1, 0.27), _run('B', 2, 0.26),
            # C is within the noise of A
            _run('C', 0, 0.33), _run('C', 1, 0.28), _run('C', 2, 0.30)]
    rows.append(dict(_run('D', 0, math.nan), ok=False))  # a failed run is left out
    summary = compare.summarise(rows)
    assert [s['name'] for s in summary] == ['A', 'C', 'B']
    a, c, b = summary
    assert a['diff'] == 0 and not a['significant']
    assert b['diff'] == pytest.approx(-0.05) and b['diff_ci'] == pytest.approx(0, abs=1e-9)
    assert b['significant']
    # C - A per seed: +0.03, -0.04, -0.01: mean -0.00667, std 0.0351, half 4.3027 * 0.0351 / 1.732
    assert c['diff'] == pytest.approx(-0.02 / 3)
    assert c['diff_ci'] == pytest.approx(4.302653 * 0.035119 / math.sqrt(3), rel=1e-4)
    assert not c['significant']
    assert a['mAP_50'] == pytest.approx(0.51) and a['n'] == 3


def test_table_and_plot_say_which_differences_are_significant(tmp_path):
    rows = [_run('A', s, 0.30 + 0.01 * s) for s in range(3)]
    rows += [_run('B', s, 0.25 + 0.01 * s) for s in range(3)]
    args = compare.parse_args(['--seeds', '0', '1', '2', '--work-dir', str(tmp_path)])
    assert args.out_md == str(tmp_path / 'compare_losses.md')  # not docs/ unless asked
    summary = compare.write_table(rows, [], args, args.out_md)
    compare.write_plot(summary, args.out_png)
    text = (tmp_path / 'compare_losses.md').read_text()
    assert '| A | 3 | 0.310 ± 0.025 |' in text  # 4.302653 * 0.01 / sqrt(3) = 0.0248
    assert '| B | 3 | 0.260 ± 0.025 | 0.460 | 0.160 | -0.050 ± 0.000 | yes |' in text
    assert 'Significantly below the best (A) at the 5% level: B' in text
    assert (tmp_path / 'compare_losses.png').stat().st_size > 1000


def test_default_outputs_go_to_work_dirs():
    args = compare.parse_args([])
    assert args.seeds == [0, 1, 2]
    assert args.out_md.startswith('work_dirs/') and args.out_png.startswith('work_dirs/')
