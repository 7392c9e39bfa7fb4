"""A 2-process CPU DDP run (gloo, through tools/dist_train.sh) of a few iterations completes
and logs finite losses."""
import os
import socket
import subprocess

from _integration_utils import (RETINANET, ROOT, assert_finite_losses, load_tool,
                                make_tiny_data, read_train_scalars, shrink)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path):
    data_root = make_tiny_data(tmp_path / 'data')
    work_dir = tmp_path / 'ddp'
    train = load_tool('train')
    cfg = shrink(train.build_config(train.parse_args([RETINANET])), data_root, work_dir)
    # 4 images, 2 processes, 1 image each per step: 2 iterations
    cfg.train_dataloader.batch_size = 1
    cfg.val_dataloader.batch_size = 1
    config = tmp_path / 'ddp_config.py'
    cfg.dump(str(config))

    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', os.path.join(ROOT, 'tools', 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'Distributed launcher: pytorch' in result.stdout + result.stderr
    records = read_train_scalars(work_dir)
    assert [r['step'] for r in records] == [1, 2]
    assert_finite_losses(records)
    assert (work_dir / 'epoch_1.pth').is_file()
