"""The study's analysis records: which run they read, where they are, who made them."""
import json
from types import SimpleNamespace

import pytest

from mmdet_ghm.study.analysis_records import (final_checkpoint, load_analysis_records,
                                              pending_measurements, provenance, trained_runs)


def attempt(root, name, variant, seed, epoch, files=True):
    """A study attempt directory: spec.json, last_checkpoint and (``files``) the checkpoint."""
    path = root / variant / f'seed{seed}' / name
    path.mkdir(parents=True)
    spec = dict(variant=dict(name=variant), seed=seed, config_rel='configs/x.py',
                overrides={'data_root': '/machine/data/'}, record_overrides={'data_root': 'data/'})
    (path / 'spec.json').write_text(json.dumps(spec))
    (path / 'last_checkpoint').write_text(str(path / f'epoch_{epoch}.pth'))
    if files:
        (path / f'epoch_{epoch}.pth').write_bytes(b'')
    return path


def test_final_checkpoint_is_the_newest_attempt_that_finished(tmp_path):
    attempt(tmp_path, '20261207_010000', 'v', 0, 48)
    newest = attempt(tmp_path, '20261207_020000', 'v', 0, 48)
    attempt(tmp_path, '20261207_030000', 'v', 0, 12)  # stopped early, a later attempt
    spec, checkpoint = final_checkpoint(str(tmp_path), 'v', 0, 48)
    assert checkpoint == str(newest / 'epoch_48.pth') and spec['seed'] == 0
    with pytest.raises(FileNotFoundError, match=r'v seed 1: .*epoch_48\.pth'):
        final_checkpoint(str(tmp_path), 'v', 1, 48)
    attempt(tmp_path, '20261207_040000', 'w', 0, 48, files=False)  # the file is gone
    with pytest.raises(FileNotFoundError, match='w seed 0'):
        final_checkpoint(str(tmp_path), 'w', 0, 48)


def test_trained_runs_name_the_missing_record_or_checkpoint(tmp_path):
    repo, work = tmp_path / 'repo', tmp_path / 'work'
    (repo / 'results' / 'runs' / 'v').mkdir(parents=True)
    (repo / 'results' / 'runs' / 'v' / 'seed0.json').write_text(json.dumps(dict(epochs=48)))
    newest = attempt(work, '20261207_020000', 'v', 0, 48)
    runs = list(trained_runs(str(repo), 'results', ['v'], [0], str(work)))
    assert [(v, s, r, e, c) for v, s, r, e, _, c in runs] == [
        ('v', 0, 'results/runs/v/seed0.json', 48, str(newest / 'epoch_48.pth'))]
    with pytest.raises(FileNotFoundError, match=r'v seed 1: no record results/runs/v/seed1\.json'):
        list(trained_runs(str(repo), 'results', ['v'], [0, 1], str(work)))
    (repo / 'results' / 'runs' / 'v' / 'seed2.json').write_text(json.dumps(dict(epochs=96)))
    with pytest.raises(FileNotFoundError, match=r'v seed 2: no attempt .*epoch_96\.pth'):
        list(trained_runs(str(repo), 'results', ['v'], [2], str(work)))


def test_records_load_by_file_stem_and_name_their_maker(tmp_path):
    (tmp_path / 'analysis' / 'kind').mkdir(parents=True)
    (tmp_path / 'analysis' / 'kind' / 'b-seed0.json').write_text('{"x": 2}')
    (tmp_path / 'analysis' / 'kind' / 'a-seed0.json').write_text('{"x": 1}')
    records = load_analysis_records(str(tmp_path), 'analysis/kind')
    assert list(records.items()) == [('a-seed0', {'x': 1}), ('b-seed0', {'x': 2})]
    assert load_analysis_records(str(tmp_path), 'analysis/none') == {}
    env = dict(date='2026-12-07T05:00:00+00:00', machine=dict(cpu='AMD EPYC', cores=2))
    assert provenance(dict(commit='abc', dirty=True), env, 'tools/x.py') == dict(
        code_commit='abc', code_dirty=True, date='2026-12-07', machine='AMD EPYC, 2 cores, CPU',
        tool='tools/x.py')


def test_pending_measurements_leave_out_existing_records_unless_overwritten(tmp_path):
    repo, work = tmp_path / 'repo', tmp_path / 'work'
    (repo / 'results' / 'runs' / 'v').mkdir(parents=True)
    (repo / 'results' / 'runs' / 'v' / 'seed0.json').write_text(json.dumps(dict(epochs=48)))
    attempt(work, '20261207_020000', 'v', 0, 48)
    (repo / 'results' / 'kind').mkdir()
    (repo / 'results' / 'kind' / 'v-seed0-train.json').write_text('{}')
    args = SimpleNamespace(variants=['v'], seeds=[0], splits=['train', 'val'],
                           work_dir=str(work), overwrite=False)
    said = []
    pending = pending_measurements(str(repo), 'results', 'kind', args, echo=said.append)
    assert [(run[:4], split, out) for run, split, out in pending] == [
        (('v', 0, 'results/runs/v/seed0.json', 48), 'val',
         str(repo / 'results' / 'kind' / 'v-seed0-val.json'))]
    assert said == ['results/kind/v-seed0-train.json exists (--overwrite replaces it)']
    args.overwrite = True
    assert [split for _, split, _ in pending_measurements(str(repo), 'results', 'kind', args,
                                                          echo=said.append)] == ['train', 'val']
    args.seeds = [0, 1]
    with pytest.raises(FileNotFoundError, match='v seed 1: no record'):
        pending_measurements(str(repo), 'results', 'kind', args)
