"""Study runs survive interruption: resumed from their checkpoint, trained once across runners."""
import json
import os
import os.path as osp
import subprocess
import sys

from mmdet_ghm.study.runner import GridOptions, plan, resume_checkpoint, run_grid
from mmdet_ghm.study.variants import VARIANTS

from tests.interrupt import KILLER, METRIC_KEYS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPEC = dict(variant={'name': 'ghm'}, seed=0, config_rel='c.py', overrides={'a': 1}, epochs=3)


def _attempt(parent, name, spec, checkpoint='epoch_1.pth', write_checkpoint=True):
    attempt = parent / name
    attempt.mkdir(parents=True)
    (attempt / 'spec.json').write_text(json.dumps(dict(spec, work_dir=str(attempt))))
    if checkpoint is not None:
        (attempt / 'last_checkpoint').write_text(str(attempt / checkpoint))
        if write_checkpoint:
            (attempt / checkpoint).write_bytes(b'x')
    return attempt


def test_resume_checkpoint_is_the_latest_attempt_of_the_same_run(tmp_path):
    parent = tmp_path / 'ghm' / 'seed0'
    assert resume_checkpoint(str(parent), SPEC) is None
    _attempt(parent, '20261201_100000', SPEC, 'epoch_2.pth')
    _attempt(parent, '20261201_110000', SPEC, 'epoch_1.pth')
    _attempt(parent, '20261201_120000', dict(SPEC, epochs=4))  # another run: not resumed
    _attempt(parent, '20261201_130000', SPEC, checkpoint=None)  # died before a checkpoint
    _attempt(parent, '20261201_140000', SPEC, 'epoch_3.pth', write_checkpoint=False)
    found = resume_checkpoint(str(parent), SPEC)
    assert found == str(parent / '20261201_110000' / 'epoch_1.pth')


# Trains nothing: notes that it ran, waits a little, writes a record.
SLOW_FAKE_CHILD = r'''
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
with open(os.environ['TRAINED_LOG'], 'a') as f:
    f.write(f"{spec['variant']['name']} {spec['seed']}\n")
time.sleep(1.5)
record = dict(variant=spec['variant']['name'], seed=spec['seed'], bbox_mAP=0.5,
              val_curve=[dict(epoch=1, bbox_mAP=0.5)])
tmp = spec['record_path'] + '.tmp'
os.makedirs(os.path.dirname(tmp), exist_ok=True)
json.dump(record, open(tmp, 'w'))
os.replace(tmp, spec['record_path'])
'''

RUNNER = r'''
import sys
from mmdet_ghm.study.runner import GridOptions, plan, run_grid
from mmdet_ghm.study.variants import VARIANTS
root, records, work, data, child, *names = sys.argv[1:]
options = GridOptions(root=root, work_dir=work, jobs=1, quick=True, data_dir=data,
                      status_every=1e9, command=lambda spec: [sys.executable, child, spec])
failed = run_grid(plan([VARIANTS[n] for n in names], [0, 1], records), options)
sys.exit(len(failed))
'''


def test_two_runners_on_one_records_folder_train_each_run_once(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(SLOW_FAKE_CHILD)
    runner = tmp_path / 'runner.py'
    runner.write_text(RUNNER)
    records, trained = tmp_path / 'records', tmp_path / 'trained.txt'
    env = dict(os.environ, TRAINED_LOG=str(trained), PYTHONPATH=REPO)
    common = [sys.executable, str(runner), str(tmp_path), str(records), str(tmp_path / 'w'),
              str(tmp_path / 'data'), str(child)]
    names = ['fl', 'ce', 'ghm']
    procs = [subprocess.Popen(common + order, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for order in (names, names[::-1])]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    lines = sorted(trained.read_text().splitlines())
    assert lines == sorted(f'{name} {seed}' for name in names for seed in (0, 1)), outputs
    log = '\n'.join(outputs)
    assert any(skip in log for skip in ('being trained by PID', 'recorded meanwhile',
                                        'already recorded'))
    assert not list(records.rglob('*.lock'))




def test_a_killed_run_resumes_to_the_uninterrupted_record(tmp_path):
    killer = tmp_path / 'killer.py'
    killer.write_text(KILLER)
    data = str(tmp_path / 'data')

    def grid(records, work, command=None):
        options = GridOptions(root=REPO, work_dir=str(work), jobs=1, quick=True, epochs=3,
                              data_dir=data, status_every=1e9)
        if command is not None:
            options.command = command
        lines = []
        failed = run_grid(plan([VARIANTS['ghm']], [0], str(records)), options,
                          echo=lines.append)
        return failed, '\n'.join(lines)

    failed, _ = grid(tmp_path / 'whole', tmp_path / 'w_whole')
    assert failed == []
    failed, log = grid(tmp_path / 'cut', tmp_path / 'w_cut',
                       command=lambda spec: [sys.executable, str(killer), spec])
    assert len(failed) == 1 and 'FAILED (exit code -9)' in log
    failed, log = grid(tmp_path / 'cut', tmp_path / 'w_cut')
    assert failed == [] and '[ghm s0] resuming from ' in log
    with open(tmp_path / 'whole' / 'ghm' / 'seed0.json') as f:
        whole = json.load(f)
    with open(tmp_path / 'cut' / 'ghm' / 'seed0.json') as f:
        resumed = json.load(f)
    assert whole['resumed_at_epochs'] == [] and resumed['resumed_at_epochs'] == [1]
    assert len(whole['val_curve']) == 3 and len(whole['ghm_stats']) == 3
    assert len(whole['cls_grad_stats']) == 3
    assert resumed['cls_grad_stats'] == whole['cls_grad_stats']  # kept in the checkpoint
    for key in METRIC_KEYS:
        assert resumed[key] == whole[key], key
    assert len(os.listdir(tmp_path / 'w_cut' / 'ghm' / 'seed0')) == 2  # the killed attempt kept
