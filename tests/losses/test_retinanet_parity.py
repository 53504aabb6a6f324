"""RetinaNet with the plugin's losses trains exactly like with MMDetection's GHMC/GHMR."""
import copy

import torch
from mmengine.hub import get_config
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules

import mmdet_ghm  # noqa: F401


def small_ghm_retinanet_cfg():
    """MMDetection's GHM RetinaNet config, with a small, randomly initialised backbone."""
    cfg = get_config('mmdet::ghm/retinanet_r50_fpn_ghm-1x_coco.py')
    model = copy.deepcopy(cfg.model)
    model.backbone.update(depth=18, init_cfg=None, norm_eval=False)
    model.neck.in_channels = [64, 128, 256, 512]
    model.neck.out_channels = 32
    model.bbox_head.update(in_channels=32, feat_channels=32, stacked_convs=1, num_classes=8)
    return model


def build(model_cfg, cls_type, reg_type):
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.bbox_head.loss_cls.type = cls_type
    model_cfg.bbox_head.loss_bbox.type = reg_type
    return MODELS.build(model_cfg)


def test_three_training_iterations_match(kernel_mode):
    register_all_modules()
    model_cfg = small_ghm_retinanet_cfg()
    torch.manual_seed(0)
    ref = build(model_cfg, 'GHMC', 'GHMR')
    ours = build(model_cfg, 'GHMCLoss', 'GHMRLoss')
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert type(ours.bbox_head.loss_cls).__name__ == 'GHMCLoss'
    assert type(ours.bbox_head.loss_bbox).__name__ == 'GHMRLoss'
    optimizer = torch.optim.SGD(ref.parameters(), lr=1e-3, momentum=0.9)
    for iteration in range(3):
        # Same weights and batch each iteration; the GHM EMA buffers evolve
        # on their own in each model and must stay equal.
        with torch.no_grad():
            for p_ours, p_ref in zip(ours.parameters(), ref.parameters()):
                p_ours.copy_(p_ref)
        data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160)] * 2,
                              num_items=[4, 7], num_classes=8)
        data['inputs'] = [img.float() for img in data['inputs']]
        losses = []
        for model in (ref, ours):
            model.zero_grad()
            batch = model.data_preprocessor(copy.deepcopy(data), True)
            parts = {k: sum(v) for k, v in model(**batch, mode='loss').items()}
            sum(parts.values()).backward()
            losses.append(parts)
        for key in ('loss_cls', 'loss_bbox'):
            expected, got = losses[0][key].item(), losses[1][key].item()
            assert expected > 0
            assert abs(got - expected) <= 1e-5 * abs(expected), (iteration, key, got, expected)
        for (name, p_ref), p_ours in zip(ref.named_parameters(), ours.parameters()):
            if p_ref.grad is None:  # frozen stages
                assert p_ours.grad is None, name
                continue
            scale = p_ref.grad.abs().max().clamp(min=1e-12)
            assert (p_ours.grad - p_ref.grad).abs().max() <= 1e-4 * scale, (iteration, name)
        for attr in ('loss_cls', 'loss_bbox'):
            acc_ref = getattr(ref.bbox_head, attr).acc_sum
            acc_ours = getattr(ours.bbox_head, attr).acc_sum
            assert torch.allclose(acc_ours, acc_ref, rtol=1e-6), (iteration, attr)
        torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm=35)  # as configured
        optimizer.step()
