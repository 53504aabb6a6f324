"""Tests of the study records: migration of schema-1 records to portable ones."""
import hashlib
import json
import os.path as osp

import pytest

from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
from mmdet_ghm.study.records import RECORD_SCHEMA, migrate_record
from mmdet_ghm.study.data_sets import run_overrides

PARAMS = dict(seed=0, num_train=6, num_val=2)


def schema1_record(old_root, stats):
    """What the runner wrote before schema 2: the machine's paths inside."""
    overrides = run_overrides('shapes', old_root, PARAMS, quick=False)
    overrides['model.bbox_head.loss_cls.type'] = 'GHMC'
    return dict(variant='ghm', seed=1, bbox_mAP=0.4, val_curve=[], overrides=overrides,
                data=dict(data_root=old_root, generator_cfg=PARAMS, stats=stats),
                env=dict(torch='2.13.0', mmdet_ghm_path='/old/machine/checkout/mmdet_ghm'))


def test_migration_names_the_set_by_id_and_hash_and_keeps_no_path(tmp_path):
    data_dir = tmp_path / 'data'
    stats = ensure_synthetic_shapes(str(data_dir / 'synthetic_shapes'), **PARAMS)['stats']
    old = schema1_record('/old/machine/data/synthetic_shapes/', stats)
    new = migrate_record(old, str(data_dir))
    assert new['schema'] == RECORD_SCHEMA == 2
    ann = data_dir / 'synthetic_shapes' / 'annotations' / 'instances_train.json'
    assert new['data'] == dict(
        id='synthetic_shapes', params=PARAMS, stats=stats, annotations_sha256={
            'annotations/instances_train.json': hashlib.sha256(ann.read_bytes()).hexdigest(),
            'annotations/instances_val.json': hashlib.sha256(
                (ann.parent / 'instances_val.json').read_bytes()).hexdigest()})
    assert new['overrides']['val_evaluator.ann_file'] == \
        'data/synthetic_shapes/annotations/instances_val.json'
    assert new['overrides']['model.bbox_head.loss_cls.type'] == 'GHMC'
    assert new['env'] == dict(torch='2.13.0', mmdet_ghm_from_checkout=True)
    text = json.dumps(new)
    assert '/old/' not in text and str(tmp_path) not in text
    assert old['data']['data_root'] == '/old/machine/data/synthetic_shapes/'  # not mutated
    assert migrate_record(new, str(data_dir)) is new  # schema 2: nothing to do


def test_migration_builds_a_missing_set_and_refuses_other_stats(tmp_path):
    stats = ensure_synthetic_shapes(str(tmp_path / 'a' / 'synthetic_shapes'), **PARAMS)['stats']
    new = migrate_record(schema1_record('/x/synthetic_shapes', stats), str(tmp_path / 'b'))
    assert osp.isfile(tmp_path / 'b' / 'synthetic_shapes' / 'annotations' /
                      'instances_val.json')
    assert new['data']['stats'] == stats
    wrong = dict(stats, train=dict(stats['train'], images=999))
    with pytest.raises(ValueError, match=r"ghm seed 1: the set in .* has other stats than "
                       r"the recorded set 'synthetic_shapes'"):
        migrate_record(schema1_record('/x/synthetic_shapes', wrong), str(tmp_path / 'b'))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_committed_records_keep_no_absolute_path():
    """Every JSON under docs/results names files relative to the repository."""
    import glob
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    paths = glob.glob(osp.join(repo, 'docs', 'results', '**', '*.json'), recursive=True)
    assert len(paths) > 50
    for path in paths:
        with open(path) as f:
            absolute = [s for s in _strings(json.load(f)) if s.startswith(('/', '~'))]
        assert not absolute, f'{osp.relpath(path, repo)} keeps absolute paths: {absolute[:3]}'


def test_stats_sampling_of_a_record_and_of_a_resumed_run():
    from mmdet_ghm.engine.hooks import GHMStatsHook
    from mmdet_ghm.study.records import combine_sampling, stats_sampling
    assert GHMStatsHook.SAMPLING == 'window'
    assert stats_sampling(dict(variant='ghm', seed=0)) == 'last-batch'  # older: no field
    assert stats_sampling(dict(ghm_stats_sampling='window')) == 'window'
    assert stats_sampling(dict(ghm_stats_sampling='mixed')) == 'mixed'
    with pytest.raises(ValueError, match=r"'per-batch' \(record of ghm seed 3\)"):
        stats_sampling(dict(variant='ghm', seed=3, ghm_stats_sampling='per-batch'))
    assert combine_sampling(None, 'window') == 'window'
    assert combine_sampling('window', 'window') == 'window'
    assert combine_sampling('last-batch', 'window') == 'mixed'
    assert combine_sampling('mixed', 'window') == 'mixed'
    assert combine_sampling('window', None) == 'window'
    assert combine_sampling(None, None) is None
