"""Tests of ``tools/main_job.py`` and ``tools/study.py`` (arguments, smoke runs, resume)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAIN_JOB = osp.join(REPO, 'tools', 'main_job.py')
STUDY = osp.join(REPO, 'tools', 'study.py')


def _load(path):
    spec = importlib.util.spec_from_file_location(osp.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_loss_is_a_study_variant_with_an_existing_config():
    from mmdet_ghm.study.variants import VARIANTS
    mj = _load(MAIN_JOB)
    assert mj.DEFAULT_LOSSES == ['ce', 'fl', 'ghm']
    assert mj.parse_args(['--losses', 'all']).losses == list(mj.LOSSES)
    for variant in VARIANTS.values():
        assert osp.isfile(osp.join(REPO, variant.config)), variant.config


@pytest.mark.parametrize('argv, match', [
    (['--losses', 'ce', 'focal'], 'focal'),
    (['--losses', 'fl', 'fl'], 'duplicates'),
    (['--epochs', '0'], 'epochs'),
    (['--seeds', '0'], 'seeds'),
])
def test_main_job_rejects_bad_arguments(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _load(MAIN_JOB).parse_args(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize('argv, match', [
    (['--variants', 'fl', 'nope'], 'nope'),
    (['--variants', 'fl', '--seeds', '1', '1'], 'repeat'),
    (['--variants', 'fl', '--jobs', '0'], 'jobs'),
    ([], '--variants, --aggregate, --reproduce, --migrate or --list'),
    (['--reproduce', 'nope', '0'], 'known variant'),
    (['--reproduce', 'fl', '0', '--variants', 'ce'], 'no --variants'),
])
def test_study_rejects_bad_arguments(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _load(STUDY).parse_args(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def _run(cmd, cwd=None):
    proc = subprocess.run([sys.executable] + cmd, capture_output=True, text=True, timeout=900,
                          cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_main_job_quick_with_two_seeds(tmp_path):
    """``--quick --seeds 2``: compare_losses on the synthetic config; mean ± std over the seeds."""
    out = _run([MAIN_JOB, '--quick', '--losses', 'ce', 'ghm', '--seeds', '2',
                '--work-dir', 'work', '--data-dir', 'data'], cwd=str(tmp_path))
    work = tmp_path / 'work'
    (run,) = os.listdir(work)
    with open(work / run / 'results.json') as f:
        res = json.load(f)
    assert res['failed'] == [] and res['quick'] is True and res['seeds'] == [0, 1]
    assert res['info']['config'] == 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'
    ce = res['summary']['settings']['ce']
    assert ce['seeds'] == [0, 1] and ce['n'] == 2
    maps = []
    for seed in (0, 1):
        with open(work / run / 'records' / 'ce' / f'seed{seed}.json') as f:
            record = json.load(f)
        assert record['epochs'] == 1 and record['overrides'][
            'train_dataloader.dataset.data_root'] == 'data/synthetic_shapes_quick/'
        maps.append(record['bbox_mAP'])
    assert all(0.0 <= m <= 1.0 for m in maps)
    assert ce['bbox_mAP']['mean'] == pytest.approx(sum(maps) / 2)
    assert ce['bbox_mAP']['std'] == pytest.approx(abs(maps[0] - maps[1]) / 2 ** 0.5)
    # one comparison engine: the same clipping for every loss, the verdict against... CE
    assert res['info']['clip'].startswith("{'max_norm': 35")
    assert res['summary']['reference'] == 'ce' and 'ghm' in res['summary']['verdicts']
    assert (work / run / 'curves.png').stat().st_size > 10_000
    assert (work / run / 'report.md').is_file()
    assert 'mean ± sample std over 2 seed(s)' in out and 'ce ' in out
    assert (tmp_path / 'data' / 'synthetic_shapes_quick' / 'synthetic_shapes_meta.json').is_file()


def test_study_quick_records_and_resumes(tmp_path):
    """A quick study writes complete records, aggregates them, and skips them next time."""
    args = [STUDY, '--quick', '--variants', 'ghm', 'ghm-ref', '--seeds', '0',
            '--records', str(tmp_path / 'results' / 'runs'), '--work-dir', str(tmp_path / 'w'),
            '--data-dir', str(tmp_path / 'data')]
    out = _run(args)
    with open(tmp_path / 'results' / 'runs' / 'ghm' / 'seed0.json') as f:
        record = json.load(f)
    with open(tmp_path / 'data' / 'synthetic_shapes_quick' / 'annotations' /
              'instances_train.json') as f:
        n_train = len({a['image_id'] for a in json.load(f)['annotations']})
    assert record['variant'] == 'ghm' and record['seed'] == 0 and record['epochs'] == 1
    assert record['iters'] == -(-n_train // 4)  # 1 epoch, batch size 4
    assert len(record['val_curve']) == 1 and record['val_curve'][0]['epoch'] == 1
    assert record['bbox_mAP'] == record['val_curve'][0]['bbox_mAP']
    assert record['s_per_iter'] > 0 and record['peak_rss_mib'] > 100
    assert record['env']['torch'] and record['env']['mmdet'] == '3.3.0'
    assert record['env']['mmdet_ghm_from_checkout'] is True
    assert str(tmp_path) not in json.dumps(record) and REPO not in json.dumps(record)
    assert len(record['code']['commit']) == 40
    # GHMStatsHook's statistics, averaged over the epoch
    assert record['ghm_stats'][0]['epoch'] == 1
    assert 1 <= record['ghm_stats'][0]['cls/regions'] <= 30
    ref = json.load(open(tmp_path / 'results' / 'runs' / 'ghm-ref' / 'seed0.json'))
    assert ref['overrides']['model.bbox_head.loss_cls.type'] == 'GHMC'
    assert ref['ghm_stats'] == []  # the reference has no statistics
    with open(tmp_path / 'results' / 'study.json') as f:
        study = json.load(f)
    assert sorted(study['variants']) == ['ghm', 'ghm-ref']
    assert study['variants']['ghm']['runs'][0]['bbox_mAP'] == record['bbox_mAP']
    assert (tmp_path / 'results' / 'study_curves.png').is_file()
    assert 'ghm-ref' in out
    again = _run(args)
    assert '2 run(s) already recorded: skipped' in again and 'start' not in again
    # the same run trained again gives the same mAP (one seed: no spread allowed)
    out = _run(args[:1] + ['--quick', '--reproduce', 'ghm', '0'] + args[7:])
    assert f'recorded bbox mAP {record["bbox_mAP"]:.4f}' in out and 'difference +0.0000' in out
    again = json.load(open(tmp_path / 'results' / 'reproductions' / 'ghm' / 'seed0.json'))
    assert again['val_curve'] == record['val_curve']
