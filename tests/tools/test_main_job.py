"""Tests of ``tools/main_job.py`` (argument checks, run dirs, smoke run)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'main_job.py')


def _load():
    spec = importlib.util.spec_from_file_location('main_job', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_loss_has_an_existing_config():
    mj = _load()
    assert sorted(mj.CONFIGS) == ['alpha-ce', 'ce', 'cfl', 'fl', 'ghm', 'ohem']
    assert mj.DEFAULT_LOSSES == ['ce', 'fl', 'ghm']
    assert mj.parse_args(['--losses', 'all']).losses == list(mj.CONFIGS)
    for path in mj.CONFIGS.values():
        assert osp.isfile(osp.join(REPO, path)), path


@pytest.mark.parametrize('argv, match', [
    (['--losses', 'ce', 'focal'], 'focal'),
    (['--losses', 'fl', 'fl'], 'duplicates'),
    (['--epochs', '0'], 'epochs'),
])
def test_bad_arguments_are_rejected(argv, match, capsys):
    mj = _load()
    with pytest.raises(SystemExit) as exc:
        mj.parse_args(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_run_dirs_are_new_and_never_reused(tmp_path):
    mj = _load()
    dirs = [mj.new_run_dir(str(tmp_path)) for _ in range(3)]
    assert len(set(dirs)) == 3
    assert all(osp.isdir(d) and not os.listdir(d) for d in dirs)


def test_overrides_point_every_split_and_metric_at_the_data_root():
    mj = _load()
    args = mj.parse_args(['--quick', '--epochs', '3'])
    ov = mj.overrides_for(args, '/d/x', {'seed': 0})
    for split in ('train', 'val', 'test'):
        assert ov[f'{split}_dataloader.dataset.data_root'] == '/d/x/'
        assert ov[f'{split}_dataloader.dataset.generator_cfg'] == {'seed': 0}
    assert ov['val_evaluator.ann_file'] == \
        '/d/x/annotations/instances_val.json'
    assert ov['train_cfg.max_epochs'] == 3  # --epochs wins over --quick


def test_table_lists_every_model_with_its_numbers():
    mj = _load()
    fin = {'coco/bbox_mAP': 0.412, 'coco/bbox_mAP_50': 0.7, 'coco/bbox_mAP_75':
           0.333, 'coco/bbox_mAP_s': 0.25}
    res = {k: dict(final=fin, time_per_iter_s=0.5, peak_rss_mib=900.0,
                   train_wall_s=120.0) for k in ('fl', 'ghm')}
    table = mj.format_table(res)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('FL') and lines[3].startswith('GHM')
    for text in ('0.412', '0.700', '0.333', '0.250', '0.500', '900', '2.0'):
        assert text in lines[3]


def test_quick_run_end_to_end(tmp_path):
    """``--quick`` trains, evaluates and writes table, JSON and PNG."""
    work, data = tmp_path / 'work', tmp_path / 'data'
    cmd = [sys.executable, SCRIPT, '--quick', '--losses', 'fl', 'ghm',
           '--work-dir', str(work), '--data-root', str(data)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = os.listdir(work)
    assert len(runs) == 1
    run = work / runs[0]
    assert (run / 'curves.png').stat().st_size > 10_000
    with open(run / 'results.json') as f:
        res = json.load(f)
    assert res['failed'] == [] and res['quick'] is True
    with open(data / 'annotations' / 'instances_train.json') as f:
        n_train = len({a['image_id'] for a in json.load(f)['annotations']})
    assert n_train > 12
    assert sorted(res['table']) == ['fl', 'ghm']
    for key, row in res['table'].items():
        assert 0.0 <= row['bbox_mAP'] <= 1.0
        assert row['time_per_iter_s'] > 0 and row['peak_rss_mib'] > 100
        run_res = res['runs'][key]
        # 1 epoch over the train images that have boxes, batch size 4
        assert run_res['iters'] == -(-n_train // 4) == \
            len(run_res['loss_curve'])
        assert len(run_res['val_curve']) == 1
    assert 'GHM-C + GHM-R' in proc.stdout and 'bbox_mAP' in proc.stdout
    # a second run (relative paths: resolved against the caller's cwd)
    # reuses the data set and never touches the first run's results
    before = (run / 'results.json').read_bytes()
    data_mtime = (data / 'synthetic_shapes_meta.json').stat().st_mtime_ns
    cmd = [sys.executable, SCRIPT, '--quick', '--losses', 'fl',
           '--work-dir', 'work', '--data-root', 'data']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(os.listdir(work)) == 2
    assert (run / 'results.json').read_bytes() == before
    assert (data / 'synthetic_shapes_meta.json').stat().st_mtime_ns == \
        data_mtime
