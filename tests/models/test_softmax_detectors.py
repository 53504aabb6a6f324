"""Faster R-CNN and SSD train with softmax GHM-C on the synthetic set."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmdet_ghm  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'faster-rcnn': 'configs/synthetic/faster-rcnn_tiny-r18_fpn_ghmc-softmax_synthetic-shapes.py',
    'ssd': 'configs/synthetic/ssd_tiny-r18_fpn_ghmc-softmax_synthetic-shapes.py',
}


def tiny_config(name, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[name]))
    data_root = str(tmp_path / 'data') + '/'
    generator = dict(seed=0, num_train=8, num_val=2)
    cfg.train_dataloader.dataset.update(data_root=data_root, generator_cfg=generator)
    cfg.train_dataloader.batch_size = 4
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=100)
    cfg.param_scheduler = []
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000)
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def classification_loss(model):
    head = model.roi_head.bbox_head if hasattr(model, 'roi_head') else model.bbox_head
    return head.loss_cls


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_trains_a_few_iterations_with_softmax_ghmc(name, tmp_path, eager_kernels):
    runner = Runner.from_cfg(tiny_config(name, tmp_path))
    loss_cls = classification_loss(runner.model)
    assert type(loss_cls).__name__ == 'GHMCLoss' and loss_cls.use_sigmoid is False
    calls = []
    loss_cls.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train()
    # one call per iteration over the batch's 4 images (SSD: all anchors; Faster R-CNN: the
    # sampled RoIs), so the EMA is updated once per iteration
    assert len(calls) == 4
    if name == 'ssd':
        head = runner.model.bbox_head
        # 4 images of 128 px: feature maps 16, 8 and 4 px wide
        assert set(calls) == {4 * sum(head.prior_generator.num_base_priors[i] * (16 >> i) ** 2
                                      for i in range(3))}
    assert (loss_cls.acc_sum > 0).sum() >= 2  # the EMA saw several regions
    history = runner.message_hub.get_scalar('train/loss_cls').data[0]
    assert len(history) == 4 and all(torch.isfinite(torch.tensor(history)))
    assert all(v > 0 for v in history)
    moved = sum(not torch.equal(a, b.detach()) for a, b in zip(before, runner.model.parameters()))
    assert moved > len(before) // 2
