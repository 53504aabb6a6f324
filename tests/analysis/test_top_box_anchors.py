"""top_box_anchor_roles: the anchors behind a RetinaNet's top boxes, on a head whose
outputs are set by hand so the answer is known."""
import os.path as osp

import pytest
import torch

from mmdet_ghm.analysis.top_box_anchors import ANCHOR_ROLES, add_tables, top_box_anchor_roles

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_CFG = osp.join(REPO, 'configs/_base_/models/retinanet_tiny-r18_fpn.py')
GT = [[10., 12., 40., 44.], [60., 60., 90., 100.]]


@pytest.fixture(scope='module')
def model():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(MODEL_CFG).model).eval()


def batch(boxes=GT, labels=(0, 3)):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                         scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.tensor(labels))
    return dict(inputs=[torch.zeros((3, 128, 128), dtype=torch.uint8)], data_samples=[sample])


def anchor_targets(model, data):
    """Flat labels and the per-level sizes of the head on ``data``."""
    from mmdet.models.utils import unpack_gt_instances
    head = model.bbox_head
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        cls_scores, _ = head(model.extract_feat(data['inputs']))
        gt, ignore, metas = unpack_gt_instances(data['data_samples'])
        sizes = [s.shape[-2:] for s in cls_scores]
        anchors, valid = head.get_anchors(sizes, metas, device='cpu')
        labels, *_ = head.get_targets(anchors, valid, gt, metas, batch_gt_instances_ignore=ignore)
    return torch.cat([t.reshape(-1) for t in labels]), sizes, torch.cat(anchors[0])


def set_outputs(model, sizes, logits):
    """Hooks making the head score every (anchor, class) -10 but ``logits``
    ``{flat anchor index: (class, logit)}`` and regress no offset (boxes = anchors)."""
    head = model.bbox_head
    num_anchors, classes = head.num_base_priors, head.cls_out_channels
    offsets = [0]
    for h, w in sizes:
        offsets.append(offsets[-1] + h * w * num_anchors)

    def cls_hook(module, args, out):
        level = [tuple(s) for s in sizes].index(tuple(out.shape[-2:]))
        out = torch.full_like(out, -10.0)
        for index, (cls, logit) in logits.items():
            if offsets[level] <= index < offsets[level + 1]:
                local = index - offsets[level]
                cell, a = divmod(local, num_anchors)
                y, x = divmod(cell, sizes[level][1])
                out[0, a * classes + cls, y, x] = logit
        return out
    return [head.retina_cls.register_forward_hook(cls_hook),
            head.retina_reg.register_forward_hook(lambda m, a, out: torch.zeros_like(out))]


def test_a_positive_anchor_scored_first_is_a_hit_and_a_far_negative_is_background(model):
    labels, sizes, anchors = anchor_targets(model, batch())
    positive = int(torch.nonzero(labels == 0)[0])  # an anchor the assigner gives GT box 0
    far = torch.nonzero(labels == model.bbox_head.num_classes).flatten()
    far = [int(i) for i in far if anchors[i, 0] > 100 and anchors[i, 1] > 100
           and anchors[i, 2] - anchors[i, 0] < 40][0]  # a small negative anchor, far away
    handles = set_outputs(model, sizes, {positive: (0, 5.0), far: (3, 4.0)})
    try:
        table = top_box_anchor_roles(model, batch())
    finally:
        for h in handles:
            h.remove()
    assert table['hit'] == dict(positive=1, ignored=0, negative=0)
    assert table['background'] == dict(positive=0, ignored=0, negative=1)
    assert sum(sum(r.values()) for r in table.values()) == 2  # as many as objects


def test_negative_anchors_beside_an_object_are_loose_boxes(model):
    labels, sizes, anchors = anchor_targets(model, batch(boxes=[GT[0]], labels=(0,)))
    x1, y1, x2, y2 = GT[0]
    shifted = [int(i) for i in torch.nonzero(labels == model.bbox_head.num_classes).flatten()
               if abs(anchors[i, 0] - (x1 + 12)) <= 4 and abs(anchors[i, 1] - y1) <= 4
               and abs((anchors[i, 2] - anchors[i, 0]) - (x2 - x1)) <= 8]
    assert shifted, 'no negative anchor shifted off the box'
    handles = set_outputs(model, sizes, {shifted[0]: (0, 5.0)})
    try:
        table = top_box_anchor_roles(model, batch(boxes=[GT[0]], labels=(0,)))
    finally:
        for h in handles:
            h.remove()
    assert table['loose'] == dict(positive=0, ignored=0, negative=1)


def test_tables_add_and_batches_of_more_images_are_refused(model):
    one = {kind: dict.fromkeys(ANCHOR_ROLES, 1) for kind in ('hit', 'loose')}
    total = add_tables([one, one])
    assert total['hit'] == dict(positive=2, ignored=2, negative=2)
    assert total['background'] == dict.fromkeys(ANCHOR_ROLES, 0)
    two = batch()
    two['inputs'] *= 2
    two['data_samples'] *= 2
    with pytest.raises(ValueError, match='batches of one image, got 2'):
        top_box_anchor_roles(model, two)
