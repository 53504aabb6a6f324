"""Tests of the DeepForest tree-crown converter and dataset, on a fake wheel.

The fake wheel holds the two used members with small random images (300 x 200
and 180 x 150) and hand-placed boxes; nothing is downloaded. Boxes of source
A (index: role):

* 0 ``(185, 150, 232, 190)`` crosses every line of the search window [195,
  225]: the chosen line's only crossing box, so ``t = 185``, ``v = 232``;
* 1, 2 cross the nominal line 210 (and lines 205-221, 191-206);
* 3-6 lie across the train tiles' borders (73 %, 40 %, a 1-px sliver, 50 %
  visible in tile x=48, y=48); 7 is cut by ``t``;
* 8 is in val; 9 and 10 are cut by ``v`` (65 % and 31 % visible).

In source B no box crosses lines 124, 128 and 129; 124 and 128 are both 2 px
from the nominal 126, and the smaller wins.
"""
import hashlib
import importlib.util
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from mmdet_ghm.datasets import tree_crowns as tc
from mmdet_ghm.utils import pinned_wheel
from mmdet_ghm.datasets.tree_crowns import (META_FILE, SOURCES, WHEEL_NAME,
                                            choose_split, clip_boxes,
                                            crowns_in_both_splits,
                                            ensure_tree_crowns, parse_voc,
                                            read_meta, tile_origins,
                                            tile_windows)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTER = osp.join(REPO, 'tools', 'dataset_converters', 'tree_crowns.py')
SIZES = {SOURCES[0]: (300, 200), SOURCES[1]: (180, 150)}
BOXES = {
    SOURCES[0]: [(185, 150, 232, 190), (204, 20, 222, 50),
                 (190, 100, 207, 130), (40, 60, 70, 80), (100, 90, 130, 100),
                 (111, 52, 140, 70), (60, 104, 80, 120), (170, 160, 195, 180),
                 (240, 30, 280, 70), (225, 110, 245, 130), (223, 5, 236, 15)],
    SOURCES[1]: [(100, 10, 124, 40), (124, 60, 128, 90), (129, 100, 145, 130)],
}
TILE = dict(tile_size=64, tile_stride=48)


def _voc_xml(stem, size, boxes, name='Tree'):
    objs = ''.join(
        f'<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>'
        f'<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>'
        for x0, y0, x1, y1 in boxes)
    return (f'<annotation><filename>{stem}.png</filename><size><width>{size[0]}'
            f'</width><height>{size[1]}</height><depth>3</depth></size>{objs}'
            '</annotation>').encode()


def _png(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format='PNG')
    return buf.getvalue()


@pytest.fixture(scope='module')
def fake_wheel(tmp_path_factory):
    """(path, sha256, {stem: pixels}) of a wheel holding the fixture images."""
    path = str(tmp_path_factory.mktemp('wheel') / WHEEL_NAME)
    rng = np.random.default_rng(0)
    pixels = {}
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('deepforest/__init__.py', '')
        for stem in SOURCES:
            w, h = SIZES[stem]
            pixels[stem] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            zf.writestr(tc.MEMBER_DIR + stem + '.png', _png(pixels[stem]))
            zf.writestr(tc.MEMBER_DIR + stem + '.xml',
                        _voc_xml(stem, SIZES[stem], BOXES[stem]))
    with open(path, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return path, sha, pixels


@pytest.fixture(scope='module')
def built(fake_wheel, tmp_path_factory):
    """(root, meta) of the set built from the fake wheel with 64 px tiles."""
    root = str(tmp_path_factory.mktemp('built') / 'tree_crowns')
    meta = ensure_tree_crowns(root, wheel=fake_wheel[0],
                              wheel_sha256=fake_wheel[1], **TILE)
    return root, meta


def _load(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def _anns_of(coco, file_name):
    (img, ) = [i for i in coco['images'] if i['file_name'] == file_name]
    return img, [(a['crown_id'], a['bbox'], a['iscrowd'])
                 for a in coco['annotations'] if a['image_id'] == img['id']]


def _all_files(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def test_parse_voc_reads_boxes_and_rejects_bad_ones():
    xml = _voc_xml('a', (50, 40), [(1, 2, 50, 40), (3, 4, 5, 6)])
    width, height, boxes = parse_voc(xml)
    assert (width, height) == (50, 40)
    assert boxes.tolist() == [[1, 2, 50, 40], [3, 4, 5, 6]]
    assert parse_voc(_voc_xml('a', (50, 40), []))[2].shape == (0, 4)
    with pytest.raises(ValueError, match="'Shrub'"):
        parse_voc(_voc_xml('a', (50, 40), [(1, 2, 3, 4)], name='Shrub'))
    with pytest.raises(ValueError, match=r'\[1, 2, 51, 4\]'):
        parse_voc(_voc_xml('a', (50, 40), [(1, 2, 51, 4)]))
    with pytest.raises(ValueError, match=r'\[3, 2, 3, 4\]'):
        parse_voc(_voc_xml('a', (50, 40), [(3, 2, 3, 4)]))


def test_choose_split_searches_the_window_and_brackets_the_crossing_boxes():
    a, b = (np.asarray(BOXES[s]) for s in SOURCES)
    assert choose_split(a, 300) == (222, 185, 232)
    assert choose_split(b, 180) == (124, 124, 124)
    # no boxes: the nominal line, round(0.7 W) with halves up (0.7 * 15 is
    # 10.499999999999998 in floats)
    assert choose_split(np.zeros((0, 4)), 300) == (210, 210, 210)
    assert choose_split(np.zeros((0, 4)), 15) == (11, 11, 11)
    with pytest.raises(ValueError, match='width 5'):
        choose_split(np.zeros((0, 4)), 5)  # no integer in [3.25, 3.75]


def test_no_crown_in_both_splits_and_the_check_catches_a_bad_split():
    for stem, width in ((SOURCES[0], 300), (SOURCES[1], 180)):
        boxes = np.asarray(BOXES[stem])
        s, t, v = choose_split(boxes, width)
        assert crowns_in_both_splits(boxes, t, v) == []
    a = np.asarray(BOXES[SOURCES[0]])
    # the nominal line without the strip would put boxes 0 and 1 in both
    assert crowns_in_both_splits(a, 210, 210) == [0, 1]
    assert crowns_in_both_splits(a, 222, 222) == [0]
    assert crowns_in_both_splits(a, 186, 231) == [0]


@pytest.mark.parametrize('length, size, stride, want', [
    (185, 64, 48, [0, 48, 96, 121]),
    (640, 256, 192, [0, 192, 384]),
    (641, 256, 192, [0, 192, 384, 385]),
    (256, 256, 192, [0]),
    (100, 256, 192, [0]),
    (257, 256, 256, [0, 1]),
])
def test_tile_origins(length, size, stride, want):
    assert tile_origins(length, size, stride) == want


def test_tile_windows_row_by_row_and_narrow_regions():
    assert tile_windows((0, 0, 124, 150), 128, 96) == [(0, 0, 124, 128),
                                                       (0, 22, 124, 150)]
    assert tile_windows((10, 0, 110, 80), 64, 64) == [
        (10, 0, 74, 64), (46, 0, 110, 64), (10, 16, 74, 80), (46, 16, 110, 80)
    ]


def test_clip_boxes_visibility_crowd_and_slivers():
    a = np.asarray(BOXES[SOURCES[0]])
    assert clip_boxes(a, (48, 48, 112, 112)) == [
        (3, (0, 12, 22, 32), 0),   # 22 x 20 of 30 x 20: 73 % visible
        (4, (52, 42, 64, 52), 1),  # 12 x 10 of 30 x 10: 40 %
        (6, (12, 56, 32, 64), 0),  # 20 x 8 of 20 x 16: exactly 50 %
    ]  # box 5 is 1 px wide in this tile: dropped
    assert clip_boxes(a, (48, 48, 112, 112), min_side=1)[2] == \
        (5, (63, 4, 64, 22), 1)
    assert clip_boxes(a, (48, 48, 112, 112), min_visible=0.6) == [
        (3, (0, 12, 22, 32), 0), (4, (52, 42, 64, 52), 1),
        (6, (12, 56, 32, 64), 1)
    ]
    # touching a window's border is not being in it
    assert clip_boxes(a, (232, 0, 300, 200)) == [
        (8, (8, 30, 48, 70), 0), (9, (0, 110, 13, 130), 0),
        (10, (0, 5, 4, 15), 1)
    ]


def test_built_set_tiles_boxes_and_meta(built, fake_wheel):
    root, meta = built
    a, b = SOURCES
    assert meta['params'] == dict(
        format_version=tc.FORMAT_VERSION, tile_size=64, tile_stride=48,
        split_at=0.7, search_window=[0.65, 0.75], min_visible=0.5,
        min_side=2)
    assert meta['images'] == {
        a: dict(width=300, height=200, crowns=11, s=222, t=185, v=232,
                train_tiles=16, val_size=[68, 200]),
        b: dict(width=180, height=150, crowns=3, s=124, t=124, v=124,
                train_tiles=9, val_size=[56, 150]),
    }
    assert meta['source']['sha256'] == fake_wheel[1]
    assert meta['source']['wheel'] == WHEEL_NAME
    assert sorted(meta['source']['members']) == sorted(
        tc.MEMBER_DIR + s + e for s in SOURCES for e in ('.png', '.xml'))
    with zipfile.ZipFile(fake_wheel[0]) as zf:
        for name, sha in meta['source']['members'].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == sha
    assert read_meta(root) == meta

    train, val = _load(root, 'train'), _load(root, 'val')
    assert train['categories'] == val['categories'] == [
        dict(id=1, name='tree', supercategory='plant')]
    origins = [(img['source'], tuple(img['origin'])) for img in train['images']]
    assert origins == (
        [(a, (x, y)) for y in (0, 48, 96, 136) for x in (0, 48, 96, 121)] +
        [(b, (x, y)) for y in (0, 48, 86) for x in (0, 48, 60)])
    assert [i['id'] for i in train['images']] == list(range(1, 26))
    assert all(i['width'] == i['height'] == 64 for i in train['images'])

    img, anns = _anns_of(train, f'{a}_x0048_y0048.png')
    assert (img['width'], img['height']) == (64, 64)
    assert anns == [(4, [0.0, 12.0, 22.0, 20.0], 0),
                    (5, [52.0, 42.0, 12.0, 10.0], 1),
                    (7, [12.0, 56.0, 20.0, 8.0], 0)]
    # box 7 cut by t = 185: 15 x 20 of 25 x 20 visible
    assert _anns_of(train, f'{a}_x0121_y0136.png')[1] == [
        (8, [49.0, 24.0, 15.0, 20.0], 0)]
    # val: the whole regions, boxes cut by v clipped
    assert [(i['file_name'], i['width'], i['height']) for i in val['images']] \
        == [(f'{a}_x0232_y0000.png', 68, 200), (f'{b}_x0124_y0000.png', 56, 150)]
    assert _anns_of(val, f'{a}_x0232_y0000.png')[1] == [
        (9, [8.0, 30.0, 40.0, 40.0], 0), (10, [0.0, 110.0, 13.0, 20.0], 0),
        (11, [0.0, 5.0, 4.0, 10.0], 1)]
    assert _anns_of(val, f'{b}_x0124_y0000.png')[1] == [
        (13, [0.0, 60.0, 4.0, 30.0], 0), (14, [5.0, 100.0, 16.0, 30.0], 0)]

    for coco in (train, val):
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            assert ann['area'] == w * h and w >= 2 and h >= 2
            assert ann['category_id'] == 1 and ann['iscrowd'] in (0, 1)
        assert [ann['id'] for ann in coco['annotations']] == \
            list(range(1, len(coco['annotations']) + 1))

    # no crown is in both splits; the strip's crowns 1-3 are in neither
    train_crowns = {ann['crown_id'] for ann in train['annotations']}
    val_crowns = {ann['crown_id'] for ann in val['annotations']}
    assert train_crowns == {4, 5, 6, 7, 8, 12}
    assert val_crowns == {9, 10, 11, 13, 14}

    st = meta['stats']
    assert st['val'] == dict(images=2, annotations=5, crowd=1, crowns=5,
                             images_without_boxes=0, dropped=0)
    # box 5 is 1 px wide in the tiles at x=48, y=0 and y=48
    assert (st['train']['images'], st['train']['crowns'],
            st['train']['dropped']) == (25, 6, 2)
    assert st['train']['annotations'] == len(train['annotations'])
    assert st['train']['crowd'] == sum(x['iscrowd']
                                       for x in train['annotations'])
    with_boxes = {x['image_id'] for x in train['annotations']
                  if not x['iscrowd']}
    assert st['train']['images_without_boxes'] == 25 - len(with_boxes) > 0

    # the tiles are the source's pixels
    for split, coco in (('train', train), ('val', val)):
        for img in coco['images']:
            x, y = img['origin']
            src = fake_wheel[2][img['source']]
            got = np.asarray(Image.open(osp.join(root, split,
                                                 img['file_name'])))
            assert np.array_equal(
                got, src[y:y + img['height'], x:x + img['width']])

    for rel, sha in meta['annotations_sha256'].items():
        with open(osp.join(root, rel), 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha


def test_coco_api_reads_the_set(built):
    from pycocotools.coco import COCO
    root, meta = built
    for split in ('train', 'val'):
        coco = COCO(osp.join(root, 'annotations', f'instances_{split}.json'))
        assert len(coco.imgs) == meta['stats'][split]['images']
        assert len(coco.anns) == meta['stats'][split]['annotations']
        assert coco.getCatIds(catNms=['tree']) == [1]


def test_building_twice_gives_identical_files(built, fake_wheel, tmp_path):
    root, meta = built
    again = ensure_tree_crowns(str(tmp_path / 'again'), wheel=fake_wheel[0],
                               wheel_sha256=fake_wheel[1], **TILE)
    assert again['annotations_sha256'] == meta['annotations_sha256']
    assert _all_files(str(tmp_path / 'again')) == _all_files(root)


def test_ensure_reuses_and_refuses_other_parameters(built, fake_wheel):
    root, meta = built
    mtime = os.stat(osp.join(root, META_FILE)).st_mtime_ns
    before = _all_files(root)
    # no wheel needed to reuse a set
    assert ensure_tree_crowns(root, wheel_sha256=fake_wheel[1], **TILE) == meta
    assert os.stat(osp.join(root, META_FILE)).st_mtime_ns == mtime
    with pytest.raises(ValueError, match=r'other parameters.*tile_size.*'
                       r'\(64, 128\)'):
        ensure_tree_crowns(root, tile_size=128, tile_stride=48,
                           wheel=fake_wheel[0], wheel_sha256=fake_wheel[1])
    with pytest.raises(ValueError, match=r'tile_stride.*\(48, 32\)'):
        ensure_tree_crowns(root, tile_size=64, tile_stride=32,
                           wheel_sha256=fake_wheel[1])
    with pytest.raises(ValueError, match=f'{fake_wheel[1]}.*{tc.WHEEL_SHA256}'):
        ensure_tree_crowns(root, **TILE)
    assert _all_files(root) == before


def test_modified_or_foreign_roots_are_not_touched(built, fake_wheel, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(built[0], root)
    with open(osp.join(root, 'annotations', 'instances_val.json'), 'a') as f:
        f.write(' ')
    with pytest.raises(ValueError, match='differ'):
        ensure_tree_crowns(root, wheel_sha256=fake_wheel[1], **TILE)
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('precious')
    with pytest.raises(FileExistsError, match='mine'):
        ensure_tree_crowns(str(foreign), wheel=fake_wheel[0],
                           wheel_sha256=fake_wheel[1], **TILE)
    assert os.listdir(foreign) == ['keep.txt']


@pytest.mark.parametrize('kwargs, exc, match', [
    (dict(tile_size=31), ValueError, 'tile_size.*31'),
    (dict(tile_stride=0), ValueError, 'tile_stride.*0'),
    (dict(tile_size=64, tile_stride=65), ValueError, 'tile_stride.*65'),
    (dict(tile_size=64.0), TypeError, 'tile_size.*64.0'),
])
def test_bad_parameters_raise_naming_the_value(tmp_path, fake_wheel, kwargs,
                                               exc, match):
    with pytest.raises(exc, match=match):
        ensure_tree_crowns(str(tmp_path / 'x'), wheel=fake_wheel[0],
                           wheel_sha256=fake_wheel[1], **kwargs)
    assert not osp.exists(tmp_path / 'x')


def test_wrong_wheel_hash_names_both_hashes(tmp_path, fake_wheel):
    want = '0' * 64
    with pytest.raises(ValueError, match=f'{fake_wheel[1]}.*{want}'):
        ensure_tree_crowns(str(tmp_path / 'x'), wheel=fake_wheel[0],
                           wheel_sha256=want, **TILE)
    with pytest.raises(ValueError, match=f'{fake_wheel[1]}.*{tc.WHEEL_SHA256}'):
        ensure_tree_crowns(str(tmp_path / 'x'), wheel=fake_wheel[0], **TILE)
    assert not osp.exists(tmp_path / 'x')


def test_wheel_is_downloaded_once_into_the_cache(tmp_path, fake_wheel,
                                                 monkeypatch):
    calls = []

    def fake_pip(cmd, check):
        calls.append(cmd)
        dest = cmd[cmd.index('-d') + 1]
        with open(fake_wheel[0], 'rb') as src, \
                open(osp.join(dest, WHEEL_NAME), 'wb') as dst:
            dst.write(src.read())

    monkeypatch.setattr(pinned_wheel.subprocess, 'run', fake_pip)
    data = tmp_path / 'data'
    first = ensure_tree_crowns(str(data / 'tree_crowns'),
                               wheel_sha256=fake_wheel[1], **TILE)
    assert len(calls) == 1
    assert calls[0][1:] == ['-m', 'pip', 'download', '--no-deps',
                            '--only-binary=:all:', 'deepforest==2.1.0', '-d',
                            calls[0][-1]]
    # default cache: "cache" beside the data root, without leftovers
    assert os.listdir(data / 'cache') == [WHEEL_NAME]
    second = ensure_tree_crowns(str(data / 'other'), wheel_sha256=fake_wheel[1],
                                cache_dir=str(data / 'cache'), **TILE)
    assert len(calls) == 1
    assert second['annotations_sha256'] == first['annotations_sha256']
    # a download with another hash is not kept
    with pytest.raises(ValueError, match=f'{fake_wheel[1]}.*{"1" * 64}'):
        ensure_tree_crowns(str(data / 'third'), wheel_sha256='1' * 64,
                           cache_dir=str(tmp_path / 'cache2'), **TILE)
    assert os.listdir(tmp_path / 'cache2') == []


def test_concurrent_ensure_makes_one_valid_dataset(tmp_path, fake_wheel):
    root = str(tmp_path / 'trees')
    start = time.time() + 1.5
    pkg = osp.join(REPO, 'mmdet_ghm')
    # the package's two modules only, without importing MMDetection
    code = (
        'import json, sys, time, types\n'
        f'for name, path in (("mmdet_ghm", {pkg!r}), '
        f'("mmdet_ghm.datasets", {osp.join(pkg, "datasets")!r})):\n'
        '    sys.modules[name] = types.ModuleType(name)\n'
        '    sys.modules[name].__path__ = [path]\n'
        'from mmdet_ghm.datasets.tree_crowns import ensure_tree_crowns\n'
        f'time.sleep(max(0.0, {start!r} - time.time()))\n'
        f'meta = ensure_tree_crowns({root!r}, wheel={fake_wheel[0]!r}, '
        f'wheel_sha256={fake_wheel[1]!r}, **{TILE!r})\n'
        'print(json.dumps(meta["annotations_sha256"]))\n')
    procs = [
        subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert outs[0][0] == outs[1][0]
    assert sorted(os.listdir(tmp_path)) == ['.trees.lock', 'trees']


def test_converter_cli_prints_the_stats(tmp_path, fake_wheel, monkeypatch,
                                        capsys):
    spec = importlib.util.spec_from_file_location('tree_crowns_cli', CONVERTER)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setattr(tc, 'WHEEL_SHA256', fake_wheel[1])
    root = str(tmp_path / 'trees')
    meta = cli.main(['--out', root, '--tile-size', '64', '--tile-stride', '48',
                     '--wheel', fake_wheel[0]])
    out = capsys.readouterr().out
    assert f'{SOURCES[0]}: 300 x 200 px, 11 crowns; s=222 t=185 v=232; ' \
        '16 train tiles, val image 68 x 200 px' in out
    assert 'val: 2 images (0 without boxes), 5 annotations (1 crowd)' in out
    assert meta == read_meta(root)


def test_registered_dataset_builds_and_loads(tmp_path, fake_wheel):
    from mmdet.registry import DATASETS

    import mmdet_ghm  # noqa: F401  (registration)
    root = str(tmp_path / 'trees') + '/'
    cfg = dict(tile_size=64, tile_stride=48, wheel=fake_wheel[0],
               wheel_sha256=fake_wheel[1])
    ds = DATASETS.build(
        dict(type='TreeCrownsDataset', data_root=root, converter_cfg=cfg,
             ann_file='annotations/instances_train.json',
             data_prefix=dict(img='train/'), pipeline=[]))
    assert ds.metainfo['classes'] == ('tree', )
    assert len(ds) == 25  # tiles without boxes are kept
    (info, ) = [ds.get_data_info(i) for i in range(len(ds))
                if ds.get_data_info(i)['img_path'].endswith(
                    f'{SOURCES[0]}_x0048_y0048.png')]
    assert osp.isfile(info['img_path'])
    assert [(x['bbox'], x['bbox_label'], x['ignore_flag'])
            for x in info['instances']] == [
                ([0.0, 12.0, 22.0, 32.0], 0, 0),
                ([52.0, 42.0, 64.0, 52.0], 0, 1),
                ([12.0, 56.0, 32.0, 64.0], 0, 0)]
    with pytest.raises(ValueError, match='other parameters'):
        DATASETS.build(
            dict(type='TreeCrownsDataset', data_root=root,
                 converter_cfg=dict(cfg, tile_stride=64),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), test_mode=True, pipeline=[]))


def test_crowns_configs_train_and_validate(tmp_path, fake_wheel):
    """The study's crowns config (GHM with the cap, on the FL config's jitter
    pipeline; whole val regions at scale 1) trains and evaluates on the fixture set."""
    loss = 'ghm-cap'
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner
    root = str(tmp_path / 'trees') + '/'
    converter = dict(tile_size=64, tile_stride=48, wheel=fake_wheel[0],
                     wheel_sha256=fake_wheel[1])
    cfg = Config.fromfile(osp.join(
        REPO, f'configs/tree_crowns/retinanet_tiny-r18_fpn_{loss}_tree-crowns.py'))
    overrides = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                 'default_hooks.checkpoint.interval': 1, 'param_scheduler': [],
                 'model.test_cfg.score_thr': 0.0}
    for split in ('train', 'val', 'test'):
        overrides[f'{split}_dataloader.dataset.data_root'] = root
        overrides[f'{split}_dataloader.dataset.converter_cfg'] = converter
    for split in ('val', 'test'):
        overrides[f'{split}_evaluator.ann_file'] = root + 'annotations/instances_val.json'
    cfg.merge_from_dict(overrides)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'crowns_{loss}'
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    # 25 train tiles at batch 16: two iterations; then COCO evaluation of the 2 val regions
    assert runner.iter == 2
    assert np.isfinite(runner.message_hub.log_scalars['train/loss'].current())
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['coco/bbox_mAP_50'] <= 1.0
