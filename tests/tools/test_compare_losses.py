"""``tools/compare_losses.py``: end to end on a tiny config, resume, locks, bad input."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmdet_ghm.comparison.engine import CompareError, CompareOptions, prepare, run
from mmdet_ghm.study.aggregate import mean_std
from mmdet_ghm.study.data_sets import QUICK_GENERATOR, run_overrides

from tests.interrupt import KILLER, METRIC_KEYS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'compare_losses.py')
FL = osp.join(REPO, 'configs', 'synthetic', 'retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')
EPOCHS = 2


def _load_tool():
    spec = importlib.util.spec_from_file_location('compare_losses', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_config(folder, **changes) -> str:
    """The FL config on the tiny synthetic set (24 images, batch 4), 2 epochs, as one file."""
    cfg = Config.fromfile(FL)
    cfg.merge_from_dict(run_overrides('shapes', osp.join(str(folder), 'data', 'tiny') + '/',
                                      dict(QUICK_GENERATOR), quick=True))
    cfg.merge_from_dict({'train_cfg.max_epochs': EPOCHS, **changes})
    path = osp.join(str(folder), 'tiny_fl.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
    """FL and published GHM x seeds 0, 1 on the tiny config, two at a time, through the CLI."""
    folder = tmp_path_factory.mktemp('compare')
    config = tiny_config(folder)
    work = folder / 'work'
    proc = subprocess.run(
        [sys.executable, TOOL, config, '--losses', 'fl', 'ghm', '--seeds', '0', '1',
         '--work-dir', str(work), '--jobs', '2'],
        capture_output=True, text=True, timeout=900, cwd=str(folder))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder, config, work, proc.stdout


def _records(work):
    out = {}
    for loss in os.listdir(work / 'records'):
        for name in os.listdir(work / 'records' / loss):
            if name.endswith('.json'):
                with open(work / 'records' / loss / name) as f:
                    out[(loss, int(name[4:-5]))] = json.load(f)
    return out


def test_the_report_table_is_the_records_mean_and_std(compared):
    _, _, work, stdout = compared
    records = _records(work)
    assert sorted(records) == [('fl', 0), ('fl', 1), ('ghm', 0), ('ghm', 1)]
    report = (work / 'report.md').read_text()
    for loss in ('fl', 'ghm'):
        runs = [records[(loss, s)] for s in (0, 1)]
        for record in runs:
            assert record['epochs'] == EPOCHS and len(record['val_curve']) == EPOCHS
            assert record['variant_spec']['dataset'] == 'config'
            assert record['concurrent_jobs'] == 2 and len(record['code']['commit']) == 40
            assert str(work) not in json.dumps(record['overrides'])
        row = next(line for line in report.splitlines() if line.startswith(f'| `{loss}`'))
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] == '2'
        for cell, key in zip(cells[2:8], ('bbox_mAP', 'AP50', 'AP75', 'AP_small', 'AP_medium',
                                          'AP_large')):
            values = [r['final'][key] for r in runs if r['final'][key] >= 0]
            stat = mean_std(values)
            want = '–' if stat['mean'] is None else f'{stat["mean"]:.3f}' + (
                f' ± {stat["std"]:.3f}' if stat['std'] is not None else '')
            assert cell == want, (loss, key, row)
        s_iter = mean_std([r['s_per_iter'] for r in runs])
        assert cells[8] == f'{s_iter["mean"]:.2f} ± {s_iter["std"]:.2f}'
        assert 'MiB RSS' in cells[9]
    # what differs between the two losses: the loss, nothing else
    fl, ghm = records[('fl', 0)]['overrides'], records[('ghm', 0)]['overrides']
    differ = sorted(k for k in set(fl) | set(ghm) if fl.get(k) != ghm.get(k))
    assert differ == ['custom_hooks', 'model.bbox_head.loss_bbox', 'model.bbox_head.loss_cls']
    assert fl['optim_wrapper.clip_grad'] == ghm['optim_wrapper.clip_grad'] == dict(
        max_norm=35, norm_type=2)
    assert '**`ghm` vs `fl`: not enough seeds to say** (2 and 2 seed(s)' in report
    assert 'Rule: A GHM setting is compared' in report
    # the signature of each GHM run, from its record's statistics
    assert len(re.findall(r'^\| `ghm` \| [01] \| 0\.\d\d \| ', report, re.M)) == 2
    assert (work / 'curves.png').stat().st_size > 10_000
    assert 'verdict ghm vs fl: not enough seeds to say' in stdout
    # the anchors' fit, measured once per work dir, as the report says it
    with open(work / 'anchors.json') as f:
        overall = json.load(f)['coverage']['overall']
    assert 0 <= overall['uncovered_share'] <= 1 and overall['positives_per_box']['mean'] > 0
    assert (f'**{100 * overall["uncovered_share"]:.1f} % of the boxes have no anchor at IoU >= '
            '0.5**') in report
    with open(work / 'results.json') as f:
        results = json.load(f)
    assert results['summary']['settings']['fl']['bbox_mAP']['mean'] == pytest.approx(
        mean_std([records[('fl', s)]['bbox_mAP'] for s in (0, 1)])['mean'])


def test_rerunning_trains_nothing_and_extends_with_new_seeds_only(compared):
    folder, config, work, _ = compared
    lines = []
    comparison = prepare(CompareOptions(config=config, losses=['fl'], seeds=[0, 1],
                                        work_dir=str(work)), cwd=str(folder))
    assert run(comparison, echo=lines.append) == []
    assert any('2 run(s) already recorded: skipped' in line for line in lines)
    assert not any('start' in line for line in lines)




def test_a_comparison_killed_mid_run_resumes_to_the_same_record(compared, tmp_path):
    folder, config, work, _ = compared
    killer = tmp_path / 'killer.py'
    killer.write_text(KILLER)
    options = CompareOptions(config=config, losses=['ghm'], seeds=[1],
                             work_dir=str(tmp_path / 'cut'))
    lines = []
    failed = run(prepare(options, cwd=str(folder)), echo=lines.append,
                 command=lambda spec: [sys.executable, str(killer), spec])
    assert len(failed) == 1 and any('FAILED (exit code -9)' in line for line in lines), lines
    lines = []
    assert run(prepare(options, cwd=str(folder)), echo=lines.append) == []
    assert any('[ghm s1] resuming from ' in line for line in lines)
    with open(tmp_path / 'cut' / 'records' / 'ghm' / 'seed1.json') as f:
        resumed = json.load(f)
    whole = _records(work)[('ghm', 1)]
    assert resumed['resumed_at_epochs'] == [1] and whole['resumed_at_epochs'] == []
    for key in METRIC_KEYS:
        assert resumed[key] == whole[key], key


SLOW_FAKE_CHILD = r'''
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
with open(os.environ['TRAINED_LOG'], 'a') as f:
    f.write(f"{spec['variant']['name']} {spec['seed']}\n")
time.sleep(1.5)
record = dict(variant=spec['variant']['name'], seed=spec['seed'], bbox_mAP=0.5, final={},
              val_curve=[dict(epoch=1, bbox_mAP=0.5)])
tmp = spec['record_path'] + '.tmp'
json.dump(record, open(tmp, 'w'))
os.replace(tmp, spec['record_path'])
'''

INVOCATION = r'''
import sys
from mmdet_ghm.comparison.engine import CompareOptions, prepare, run
config, work, child, *losses = sys.argv[1:]
comparison = prepare(CompareOptions(config=config, losses=losses, seeds=[0, 1], work_dir=work))
sys.exit(len(run(comparison, echo=print, command=lambda s: [sys.executable, child, s])))
'''


def test_two_invocations_on_one_work_dir_train_each_run_once(compared, tmp_path):
    folder, config, _, _ = compared
    (tmp_path / 'child.py').write_text(SLOW_FAKE_CHILD)
    (tmp_path / 'invoke.py').write_text(INVOCATION)
    trained = tmp_path / 'trained.txt'
    env = dict(os.environ, TRAINED_LOG=str(trained), PYTHONPATH=REPO)
    losses = ['ce', 'fl', 'ghm']
    common = [sys.executable, str(tmp_path / 'invoke.py'), config, str(tmp_path / 'w'),
              str(tmp_path / 'child.py')]
    procs = [subprocess.Popen(common + order, env=env, stdout=subprocess.PIPE, cwd=str(folder),
                              stderr=subprocess.STDOUT, text=True)
             for order in (losses, losses[::-1])]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    lines = sorted(trained.read_text().splitlines())
    assert lines == sorted(f'{loss} {seed}' for loss in losses for seed in (0, 1)), outputs
    assert any(skip in '\n'.join(outputs) for skip in (
        'being trained by PID', 'recorded meanwhile', 'already recorded'))


def _cli_error(argv, capsys, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = _load_tool().main(argv)
    finally:
        os.chdir(old)
    assert code == 2
    return capsys.readouterr().err


def test_bad_input_is_one_clear_error_before_any_training(compared, tmp_path, capsys):
    folder, config, work, _ = compared
    no_val = tiny_config(tmp_path, val_dataloader=None, val_evaluator=None, val_cfg=None)
    err = _cli_error([no_val, '--work-dir', str(tmp_path / 'a')], capsys, tmp_path)
    assert 'has no val_dataloader, val_evaluator, val_cfg' in err
    by_iter = tiny_config(tmp_path, **{'train_cfg': dict(type='IterBasedTrainLoop',
                                                         max_iters=10, _delete_=True)})
    err = _cli_error([by_iter, '--work-dir', str(tmp_path / 'e')], capsys, tmp_path)
    assert "train_cfg.type is 'IterBasedTrainLoop'" in err
    err = _cli_error([config, '--losses', 'fl', 'focal', '--work-dir', str(tmp_path / 'b')],
                     capsys, folder)
    assert "unknown loss setting(s) ['focal']" in err
    yolo = tiny_config(tmp_path, **{'model.bbox_head.type': 'YOLOV3Head'})
    err = _cli_error([yolo, '--work-dir', str(tmp_path / 'c')], capsys, tmp_path)
    assert "cannot compare losses on a 'YOLOV3Head' head" in err
    # the work dir of the comparison above, asked for another config: refused, untouched
    before = sorted(p for p in os.listdir(work))
    other = tiny_config(tmp_path, **{'model.bbox_head.anchor_generator.octave_base_scale': 3.0})
    err = _cli_error([other, '--work-dir', str(work)], capsys, tmp_path)
    assert 'holds the comparison of another config' in err and 'nothing was changed' in err
    assert sorted(os.listdir(work)) == before
    err = _cli_error([config, '--cfg-options', 'train_cfg.max_epochs=3', '--work-dir',
                      str(work)], capsys, folder)
    assert 'holds the comparison of another config' in err
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'c').exists()
    for argv, match in ((['--seeds', '1', '1'], '--seeds must be distinct'),
                        (['--jobs', '0'], '--jobs must be >= 1'),
                        (['--clip-grad', 'soft'], "got 'soft'")):
        err = _cli_error([config, '--work-dir', str(tmp_path / 'd')] + argv, capsys, folder)
        assert match in err


def test_the_mim_run_form_finds_the_tool():
    from mmdet_ghm.utils.mim import mim_dir
    assert osp.isfile(osp.join(mim_dir(), 'tools', 'compare_losses.py'))


def test_the_pytorch_launcher_trains_each_run_over_two_processes(compared, tmp_path):
    """``--launcher pytorch --gpus 2``: torchrun, as tools/dist_train.sh; gloo on a CPU."""
    folder, config, _, _ = compared
    work = tmp_path / 'dist'
    env = dict(os.environ, PORT='29613')
    proc = subprocess.run(
        [sys.executable, TOOL, config, '--losses', 'ghm', '--seeds', '0', '--work-dir', str(work),
         '--launcher', 'pytorch', '--gpus', '2', '--cfg-options', 'train_cfg.max_epochs=1'],
        capture_output=True, text=True, timeout=900, cwd=str(folder), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(work / 'records' / 'ghm' / 'seed0.json') as f:
        record = json.load(f)
    # 24 images, batch 4 per process, 2 processes: 3 iterations (6 in one process)
    assert record['iters'] == 3 and record['epochs'] == 1 and len(record['val_curve']) == 1
    (attempt,) = os.listdir(work / 'runs' / 'ghm' / 'seed0')
    log = (work / 'runs' / 'ghm' / 'seed0' / attempt / 'train.log').read_text()
    assert 'Distributed training: True' in log
    err = _cli_error_plain([config, '--launcher', 'pytorch', '--jobs', '2', '--work-dir',
                            str(tmp_path / 'x')], folder)
    assert 'distributed runs train one after another' in err


def _cli_error_plain(argv, cwd):
    proc = subprocess.run([sys.executable, TOOL] + argv, capture_output=True, text=True,
                          timeout=300, cwd=str(cwd))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stderr
