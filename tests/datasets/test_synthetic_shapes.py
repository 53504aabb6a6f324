"""Tests of the synthetic COCO-format shapes generator and dataset."""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from mmdet_ghm.datasets.synthetic_shapes import (CLASSES, META_FILE,
                                                 ensure_synthetic_shapes,
                                                 generate_synthetic_shapes,
                                                 read_meta)

TINY = dict(num_train=8, num_val=4, image_size=64, min_size=8, max_size=24,
            max_objects=4)
GEN_FILE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'mmdet_ghm', 'datasets', 'synthetic_shapes.py')


def _all_files(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _load(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = _all_files_of(tmp_path / 'a', seed=3)
    b = _all_files_of(tmp_path / 'b', seed=3)
    c = _all_files_of(tmp_path / 'c', seed=4)
    assert sorted(a) == sorted(b)
    assert a == b
    assert a['annotations/instances_train.json'] != \
        c['annotations/instances_train.json']
    pngs = [k for k in a if k.endswith('.png')]
    assert len(pngs) == TINY['num_train'] + TINY['num_val']
    assert all(a[k] != c[k] for k in pngs)


def _all_files_of(root, seed):
    generate_synthetic_shapes(str(root), seed=seed, **TINY)
    return _all_files(str(root))


def test_coco_validity(tmp_path):
    from pycocotools.coco import COCO
    root = str(tmp_path / 'shapes')
    meta = generate_synthetic_shapes(root, seed=0, **TINY)
    size = TINY['image_size']
    for split in ('train', 'val'):
        ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
        coco = COCO(ann_file)
        assert sorted(coco.getCatIds()) == list(range(1, len(CLASSES) + 1))
        assert [coco.cats[i]['name'] for i in sorted(coco.cats)] == \
            list(CLASSES)
        n = TINY[f'num_{split}']
        assert sorted(coco.getImgIds()) == list(range(1, n + 1))
        assert len(coco.anns) == meta['stats'][split]['annotations'] > 0
        assert len({a['id'] for a in coco.anns.values()}) == len(coco.anns)
        for img in coco.imgs.values():
            with Image.open(osp.join(root, split, img['file_name'])) as im:
                assert im.size == (img['width'], img['height']) == \
                    (size, size)
        for a in coco.anns.values():
            x, y, w, h = a['bbox']
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0
            assert x + w <= size and y + h <= size
            assert a['area'] == w * h
            assert a['iscrowd'] == 0
            assert a['category_id'] in coco.cats
            assert a['image_id'] in coco.imgs
        # the set is about small objects: most boxes are COCO-small
        small = sum(a['area'] < 32 * 32 for a in coco.anns.values())
        assert small == meta['stats'][split]['small']
        assert small >= 0.5 * len(coco.anns)


def test_boxes_are_tight_around_drawn_objects(tmp_path):
    """A box covers pixels that differ from the surrounding background."""
    root = str(tmp_path / 'shapes')
    generate_synthetic_shapes(root, seed=0, mean_distractors=0.0, **TINY)
    coco = _load(root, 'val')
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        img = np.asarray(Image.open(
            osp.join(root, 'val', f'{a["image_id"]:06d}.png')), np.float32)
        inside = img[y:y + h, x:x + w].reshape(-1, 3)
        # the object colour is >= 70 (mean abs) from the background base, so
        # the box contents must spread far more than pixel noise (sigma 6)
        assert np.abs(inside - np.median(inside, 0)).mean(1).max() > 40


def test_outliers_only_in_train_and_pixels_unchanged(tmp_path):
    noisy_root, clean_root = str(tmp_path / 'noisy'), str(tmp_path / 'clean')
    kw = dict(TINY, num_train=40, max_objects=6)
    meta = generate_synthetic_shapes(noisy_root, seed=5, label_noise=0.15,
                                     missing_rate=0.15, box_noise=0.1, **kw)
    generate_synthetic_shapes(clean_root, seed=5, label_noise=0.0,
                              missing_rate=0.0, box_noise=0.0, **kw)
    noisy_files, clean_files = _all_files(noisy_root), _all_files(clean_root)
    # label corruption uses its own random stream: pixels are identical
    for k, v in clean_files.items():
        if k.endswith('.png'):
            assert noisy_files[k] == v, k
    # val is clean whatever the outlier rates are
    assert noisy_files['annotations/instances_val.json'] == \
        clean_files['annotations/instances_val.json']
    assert all('noise' not in a for a in _load(noisy_root,
                                               'val')['annotations'])
    vstats = meta['stats']['val']
    assert vstats['noisy_label'] == vstats['noisy_box'] == \
        vstats['missing'] == 0

    noisy, clean = _load(noisy_root, 'train'), _load(clean_root, 'train')
    st = meta['stats']['train']
    assert st['noisy_label'] > 0 and st['noisy_box'] > 0 and st['missing'] > 0
    assert len(clean['annotations']) - len(noisy['annotations']) == \
        st['missing']
    by_img = {}
    for a in clean['annotations']:
        by_img.setdefault(a['image_id'], []).append(a)
    counts = dict(label=0, box=0)
    for a in noisy['annotations']:
        cands = by_img[a['image_id']]
        tag = a.get('noise')
        if tag is None:
            assert any(c['bbox'] == a['bbox'] and
                       c['category_id'] == a['category_id'] for c in cands)
        elif tag == 'label':
            counts['label'] += 1
            same_box = [c for c in cands if c['bbox'] == a['bbox']]
            assert same_box and all(c['category_id'] != a['category_id']
                                    for c in same_box)
        else:
            assert tag == 'box'
            counts['box'] += 1
            assert all(c['bbox'] != a['bbox'] for c in cands)
    assert counts == dict(label=st['noisy_label'], box=st['noisy_box'])


def test_default_set_has_imbalance_and_skew(tmp_path):
    root = str(tmp_path / 'shapes')
    meta = generate_synthetic_shapes(root, seed=0, num_train=4, num_val=150)
    st, p = meta['stats']['val'], meta['params']
    per_class = [st['per_class'][c] for c in CLASSES]
    # skewed class frequencies (default weights 0.36 ... 0.08): the most
    # common class is several times as frequent as the rarest
    assert per_class[0] >= 3 * per_class[-1] > 0
    assert per_class == sorted(per_class, reverse=True)
    coco = _load(root, 'val')
    fg = sum(a['area'] for a in coco['annotations'])
    bg = len(coco['images']) * p['image_size']**2
    # few objects on a large background: boxes cover under a quarter of the
    # pixels (about 1 in 7 with the defaults; far fewer anchors are positive)
    assert 0.05 < fg / bg < 0.25


def test_concurrent_ensure_makes_one_valid_dataset(tmp_path):
    root = str(tmp_path / 'shapes')
    start = time.time() + 1.5
    pkg = osp.dirname(osp.dirname(GEN_FILE))
    # the package's data set modules only, without importing MMDetection
    code = (
        'import json, sys, time, types\n'
        f'for name, path in (("mmdet_ghm", {pkg!r}), '
        f'("mmdet_ghm.datasets", {osp.join(pkg, "datasets")!r})):\n'
        '    sys.modules[name] = types.ModuleType(name)\n'
        '    sys.modules[name].__path__ = [path]\n'
        'from mmdet_ghm.datasets import synthetic_shapes as g\n'
        f'time.sleep(max(0.0, {start!r} - time.time()))\n'
        f'meta = g.ensure_synthetic_shapes({root!r}, seed=0, '
        f'**{dict(TINY, num_train=60)!r})\n'
        'print(json.dumps(meta["stats"]["train"]["annotations"]))\n')
    procs = [
        subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert outs[0][0] == outs[1][0]
    # exactly one data set, no leftover temporary directories
    assert sorted(os.listdir(tmp_path)) == ['.shapes.lock', 'shapes']
    ref = str(tmp_path / 'ref')
    generate_synthetic_shapes(ref, seed=0, **dict(TINY, num_train=60))
    assert _all_files(root) == _all_files(ref)


def test_ensure_reuses_and_refuses_mismatched_params(tmp_path):
    root = str(tmp_path / 'shapes')
    first = ensure_synthetic_shapes(root, seed=0, **TINY)
    mtime = os.stat(osp.join(root, META_FILE)).st_mtime_ns
    again = ensure_synthetic_shapes(root, seed=0, **TINY)
    assert again == first
    assert os.stat(osp.join(root, META_FILE)).st_mtime_ns == mtime
    before = _all_files(root)
    with pytest.raises(ValueError, match='other parameters.*seed'):
        ensure_synthetic_shapes(root, seed=1, **TINY)
    with pytest.raises(ValueError, match='num_train'):
        ensure_synthetic_shapes(root, seed=0, **dict(TINY, num_train=9))
    assert _all_files(root) == before
    assert read_meta(root)['params']['seed'] == 0


def test_never_overwrites_foreign_or_existing_data(tmp_path):
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('precious')
    with pytest.raises(FileExistsError, match='mine'):
        ensure_synthetic_shapes(str(foreign), **TINY)
    with pytest.raises(FileExistsError, match='mine'):
        generate_synthetic_shapes(str(foreign), **TINY)
    assert os.listdir(foreign) == ['keep.txt']
    assert (foreign / 'keep.txt').read_text() == 'precious'
    # an existing generated set is not regenerated by generate_*
    root = str(tmp_path / 'shapes')
    generate_synthetic_shapes(root, **TINY)
    with pytest.raises(FileExistsError):
        generate_synthetic_shapes(root, **TINY)
    # an empty directory is fine to generate into
    empty = tmp_path / 'empty'
    empty.mkdir()
    ensure_synthetic_shapes(str(empty), **TINY)
    assert osp.isfile(empty / META_FILE)


@pytest.mark.parametrize('kwargs, exc, match', [
    (dict(max_size=40, image_size=64), ValueError, 'max_size'),
    (dict(min_size=30, max_size=20), ValueError, 'max_size'),
    (dict(num_train=0), ValueError, 'num_train'),
    (dict(num_val=2.5), TypeError, 'num_val'),
    (dict(class_freqs=(1, 2)), ValueError, 'class_freqs'),
    (dict(label_noise=0.7), ValueError, 'label_noise'),
    (dict(label_noise=0.2, missing_rate=0.2, box_noise=0.2), ValueError,
     'box_noise'),
    (dict(colour='red'), TypeError, 'colour'),
    (dict(seed=-1), ValueError, 'seed'),
])
def test_bad_arguments_raise_naming_the_value(tmp_path, kwargs, exc, match):
    args = dict(TINY, **kwargs)
    with pytest.raises(exc, match=match):
        generate_synthetic_shapes(str(tmp_path / 'x'), **args)
    assert not osp.exists(tmp_path / 'x')


def test_registered_dataset_generates_and_loads(tmp_path):
    from mmdet.registry import DATASETS

    import mmdet_ghm  # noqa: F401  (registration)
    root = str(tmp_path / 'shapes') + '/'
    ds = DATASETS.build(
        dict(
            type='SyntheticShapesDataset',
            data_root=root,
            generator_cfg=dict(seed=2, **TINY),
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
            test_mode=True,
            pipeline=[]))
    assert ds.metainfo['classes'] == CLASSES
    assert len(ds) == TINY['num_val']
    coco = _load(root, 'val')
    want = sorted((a['image_id'], a['category_id'] - 1, tuple(a['bbox']))
                  for a in coco['annotations'])
    got = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.isfile(info['img_path'])
        for inst in info['instances']:
            x0, y0, x1, y1 = inst['bbox']
            got.append((info['img_id'], inst['bbox_label'],
                        (x0, y0, x1 - x0, y1 - y0)))
    assert sorted(got) == want
    with pytest.raises(ValueError, match='other parameters'):
        DATASETS.build(
            dict(type='SyntheticShapesDataset', data_root=root,
                 generator_cfg=dict(seed=3, **TINY),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), test_mode=True, pipeline=[]))
