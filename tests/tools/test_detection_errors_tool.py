"""tools/analysis_tools/detection_errors.py on a tiny RetinaNet and a 3-image synthetic val split."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
MODEL_CFG = osp.join(REPO, 'configs/_base_/models/retinanet_tiny-r18_fpn.py')
BASE = osp.join(REPO, 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')


def load_tool():
    sys.path.insert(0, TOOLS)
    spec = importlib.util.spec_from_file_location('detection_errors_tool',
                                                  osp.join(TOOLS, 'detection_errors.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """``(config, checkpoint, val annotation file)`` of a randomly initialised tiny model."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
    tmp = tmp_path_factory.mktemp('detection_errors')
    data_root = str(tmp / 'data') + '/'
    ensure_synthetic_shapes(data_root, seed=0, num_train=2, num_val=3)
    config = tmp / 'tiny.py'
    config.write_text(
        f'_base_ = {BASE!r}\n'
        f'data_root = {data_root!r}\n'
        'generator_cfg = dict(seed=0, num_train=2, num_val=3)\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root, '
        'generator_cfg=generator_cfg))\n')
    register_all_modules()
    torch.manual_seed(0)
    ckpt = tmp / 'tiny.pth'
    save_checkpoint({'state_dict': MODELS.build(Config.fromfile(MODEL_CFG).model).state_dict()},
                    str(ckpt))
    return str(config), str(ckpt), osp.join(data_root, 'annotations', 'instances_val.json')


def test_a_run_prints_and_writes_the_result(tmp_path, tiny, capsys):
    config, ckpt, ann_file = tiny
    out = tmp_path / 'result.json'
    assert load_tool().main([config, ckpt, '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    with open(ann_file) as f:
        annotations = json.load(f)['annotations']
    assert result['num_images'] == 3 and result['split'] == 'val'
    assert result['num_objects'] == sum(1 for a in annotations if not a.get('iscrowd', 0))
    assert result['iou_thrs'] == [0.1, 0.3, 0.5, 0.75] and len(result['ap']) == 4
    assert 0 < result['num_detections'] and sum(result['top_boxes'].values()) <= 1 + 1e-9
    assert 'top-scored boxes' in capsys.readouterr().out
    with pytest.raises(SystemExit):  # an existing --out is not overwritten
        load_tool().main([config, ckpt, '--out', str(out)])


def test_the_ground_truth_as_predictions_scores_one(tiny, monkeypatch):
    """Predictions equal to the boxes the loader gives (scaled back to the image) must
    match every object at every threshold: ids, categories and coordinates line up."""
    config, ckpt, _ = tiny
    tool = load_tool()
    import analyze_gradient_density as agd
    real_build = agd.build

    def build_echoing_the_ground_truth(args):
        model, loader = real_build(args)

        def test_step(data):
            samples = data['data_samples']
            for sample in samples:
                gt = sample.gt_instances
                scale = torch.tensor(sample.metainfo['scale_factor']).repeat(2)
                boxes = getattr(gt.bboxes, 'tensor', gt.bboxes)  # HorizontalBoxes or a tensor
                sample.pred_instances = gt.new(bboxes=boxes / scale, labels=gt.labels,
                                               scores=torch.ones(len(gt.labels)))
            return samples
        model.test_step = test_step
        return model, loader
    monkeypatch.setattr(agd, 'build', build_echoing_the_ground_truth)
    gt, detections, img_ids, roles = tool.predict(config, ckpt, None, 'val')
    assert roles is None  # not asked for
    from mmdet_ghm.analysis.detection_errors import ap_and_recall
    result = ap_and_recall(gt, detections, img_ids=img_ids)
    assert result['ap'] == pytest.approx([1.0] * 4) and result['recall'] == pytest.approx([1.0] * 4)
    assert result['top_boxes']['hit'] == pytest.approx(1.0)


@pytest.mark.parametrize('option, match', [(['--iou-thrs', '0.5', '0.3'], 'increasing'),
                                           (['--max-dets', '0'], 'max-dets must be positive')])
def test_bad_options_are_named(tiny, capsys, option, match):
    config, ckpt, _ = tiny
    with pytest.raises(SystemExit):
        load_tool().main([config, ckpt] + option)
    assert match in capsys.readouterr().err


def test_a_missing_checkpoint_is_named(tiny, capsys):
    with pytest.raises(SystemExit):
        load_tool().main([tiny[0], 'nowhere.pth'])
    assert "checkpoint not found: 'nowhere.pth'" in capsys.readouterr().err
