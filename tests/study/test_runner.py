"""Tests of the study runner: planning, resuming, failures, hangs, data sets."""
import hashlib
import json
import os
import os.path as osp
import sys

import pytest

from mmdet_ghm.study.records import record_path, write_json_atomic
from mmdet_ghm.study.data_sets import data_settings, portable, run_overrides
from mmdet_ghm.study.runner import (GridOptions, StudyError, plan, prepare_data, run_grid,
                                    status_line)
from mmdet_ghm.study.variants import VARIANTS, get_variant

# A stand-in for mmdet_ghm.study.child: behaves as told by the variant name.
FAKE_CHILD = r'''
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
name = spec['variant']['name']
open(os.path.join(spec['work_dir'], 'train.log'), 'a').write('started\n')
if name == 'ghm':
    print('boom', file=open(os.path.join(spec['work_dir'], 'train.log'), 'a'))
    sys.exit(3)
if name == 'ce':
    time.sleep(60)  # hangs: writes nothing more
record = dict(variant=name, seed=spec['seed'], bbox_mAP=0.5 + spec['seed'] / 10,
              final=dict(bbox_mAP=0.5), val_curve=[dict(epoch=1, bbox_mAP=0.5)],
              overrides=spec['record_overrides'], data=spec['data'])
tmp = spec['record_path'] + '.tmp'
os.makedirs(os.path.dirname(tmp), exist_ok=True)
json.dump(record, open(tmp, 'w'))
os.replace(tmp, spec['record_path'])
'''


@pytest.fixture
def fake_child(tmp_path):
    script = tmp_path / 'fake_child.py'
    script.write_text(FAKE_CHILD)
    return lambda spec_path: [sys.executable, str(script), spec_path]


def test_plan_is_seed_major_and_marks_recorded_runs(tmp_path):
    records = str(tmp_path / 'records')
    write_json_atomic(record_path(records, 'fl', 1), {})
    runs = plan([VARIANTS['ce'], VARIANTS['fl']], [0, 1], records)
    assert [(r.variant.name, r.seed, r.done) for r in runs] == [
        ('ce', 0, False), ('fl', 0, False), ('ce', 1, False), ('fl', 1, True)]
    assert runs[3].record == osp.join(records, 'fl', 'seed1.json')


def test_every_data_set_has_its_own_root_named_by_id():
    set_id, root, gen = data_settings(VARIANTS['fl'], quick=False)
    assert set_id == 'synthetic_shapes' and gen == dict(seed=0)
    assert root == osp.abspath('data/synthetic_shapes') + '/'
    set_id, root, gen = data_settings(VARIANTS['ghm-noise4'], quick=False, data_dir='/d/sets')
    assert (set_id, root) == ('synthetic_shapes_noise4', '/d/sets/synthetic_shapes_noise4/')
    assert gen == dict(seed=0, label_noise=0.04, missing_rate=0.04, box_noise=0.04)
    set_id, root, gen = data_settings(VARIANTS['fl-noise0'], quick=True)
    assert root.endswith('data/synthetic_shapes_quick_noise0/')
    assert gen['num_train'] == 24 and gen['label_noise'] == 0.0
    assert data_settings(VARIANTS['crowns-sgd-fl'], quick=True, data_dir='/d') == (
        'tree_crowns', '/d/tree_crowns/', {})
    ov = run_overrides('shapes', '/d/x/', gen, quick=True)
    for split in ('train', 'val', 'test'):
        assert ov[f'{split}_dataloader.dataset.data_root'] == '/d/x/'
        assert ov[f'{split}_dataloader.dataset.generator_cfg'] == gen
    assert ov['test_evaluator.ann_file'] == '/d/x/annotations/instances_val.json'
    assert ov['train_cfg.max_epochs'] == 1
    assert 'train_cfg.max_epochs' not in run_overrides('shapes', '/d/x/', gen, quick=False)
    crowns = run_overrides('crowns', '/d/t/', {'tile_size': 256}, quick=False)
    assert crowns['val_dataloader.dataset.converter_cfg'] == {'tile_size': 256}
    assert not any(key.endswith('generator_cfg') for key in crowns)


def test_records_keep_no_absolute_path():
    ov = run_overrides('shapes', '/m/data/synthetic_shapes/', {'seed': 0}, quick=False)
    ov['custom'] = ['/m/data/synthetic_shapes/x.json', '/elsewhere/y', 3]
    out = portable(ov, '/m/data/synthetic_shapes/', 'synthetic_shapes')
    assert out['train_dataloader.dataset.data_root'] == 'data/synthetic_shapes/'
    assert out['val_evaluator.ann_file'] == 'data/synthetic_shapes/annotations/instances_val.json'
    assert out['custom'] == ['data/synthetic_shapes/x.json', '/elsewhere/y', 3]
    assert ov['val_evaluator.ann_file'].startswith('/m/')  # the child's copy is untouched


def test_reference_and_ablation_variants_change_only_what_they_say():
    ref = VARIANTS['ghm-ref']
    assert ref.config == VARIANTS['ghm'].config
    assert ref.overrides['model.bbox_head.loss_cls.type'] == 'GHMC'
    assert ref.overrides['model.bbox_head.loss_bbox.type'] == 'GHMR'
    assert VARIANTS['fl-ghmr'].overrides['model.bbox_head.loss_bbox']['type'] == 'GHMRLoss'
    assert VARIANTS['ghmc-l1'].overrides['model.bbox_head.loss_bbox']['type'] == 'L1Loss'
    assert VARIANTS['ghm-60e'].epochs == 60 and VARIANTS['ghm'].epochs is None
    with pytest.raises(KeyError, match="unknown variant 'nope'; known: ce, fl"):
        get_variant('nope')


def test_grid_records_failures_hangs_and_resumes(tmp_path, fake_child):
    records, work = str(tmp_path / 'records'), str(tmp_path / 'work')
    variants = [VARIANTS[n] for n in ('fl', 'ghm', 'ce', 'cfl')]
    options = GridOptions(root=str(tmp_path), work_dir=work, jobs=2, quick=True,
                          data_dir=str(tmp_path / 'data'), stall_timeout=3,
                          status_every=0.0, command=fake_child)
    lines = []
    failed = run_grid(plan(variants, [0], records), options, echo=lines.append)
    log = '\n'.join(lines)
    # ghm exits 3, ce hangs and is killed; fl and cfl still finish
    assert sorted(r.variant.name for r in failed) == ['ce', 'ghm']
    assert '[ghm s0] FAILED (exit code 3)' in log and 'boom' in log
    assert '[ce s0] no progress for 3 s: killed' in log
    assert '[study] ' in log and 'runs done' in log
    for name in ('fl', 'cfl'):
        with open(record_path(records, name, 0)) as f:
            record = json.load(f)
        assert record['bbox_mAP'] == 0.5
        assert record['overrides']['train_cfg.max_epochs'] == 1
        # the set by id and annotation hashes; no path of this machine
        assert record['overrides']['train_dataloader.dataset.data_root'] == \
            'data/synthetic_shapes_quick/'
        assert record['data']['id'] == 'synthetic_shapes_quick'
        assert record['data']['params'] == dict(seed=0, num_train=24, num_val=8)
        ann = osp.join(str(tmp_path), 'data', 'synthetic_shapes_quick', 'annotations',
                       'instances_val.json')
        assert record['data']['annotations_sha256']['annotations/instances_val.json'] == \
            hashlib.sha256(open(ann, 'rb').read()).hexdigest()
        assert str(tmp_path) not in json.dumps(record)
    assert not osp.exists(record_path(records, 'ghm', 0))
    first_attempt = os.listdir(osp.join(work, 'ghm', 'seed0'))
    # second invocation: recorded runs are skipped, the failed ones restart in new dirs
    lines.clear()
    fl_record = open(record_path(records, 'fl', 0)).read()
    failed = run_grid(plan(variants, [0], records), options, echo=lines.append)
    log = '\n'.join(lines)
    assert '2 run(s) already recorded: skipped' in log
    assert '[ghm s0] restarting: an earlier attempt' in log
    attempts = os.listdir(osp.join(work, 'ghm', 'seed0'))
    assert len(attempts) == 2 and set(first_attempt) < set(attempts)
    assert open(record_path(records, 'fl', 0)).read() == fl_record
    assert '[fl s0] start' not in log


def test_a_data_root_holding_another_set_is_one_clear_error(tmp_path):
    from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
    root = tmp_path / 'synthetic_shapes_quick'
    ensure_synthetic_shapes(str(root), seed=1, num_train=2, num_val=1)
    runs = plan([VARIANTS['fl']], [0], str(tmp_path / 'records'))
    with pytest.raises(StudyError, match=r'cannot prepare the data set .*synthetic_shapes_quick/: .*other '
                       r'parameters'):
        prepare_data(runs, quick=True, data_dir=str(tmp_path), echo=lambda line: None)


def test_status_line_estimates_the_remaining_time(tmp_path):
    runs = plan([VARIANTS['fl'], VARIANTS['fl-60e']], [0], str(tmp_path))
    runs[0].done, runs[0].started = True, 1.0  # 30 epochs done in 10 min
    line = status_line(runs, [], todo_weight=90.0, elapsed=600.0)
    assert line == '[study] 1/2 runs done; elapsed 10.0 min, ETA 20 min'
    assert status_line(runs, [], 90.0, 600.0, label='compare').startswith('[compare] 1/2 runs')
