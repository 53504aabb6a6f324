"""GHMWarmupHook: sets the training iteration of every warm-up GHM loss, survives
resume, adds no host reads; a real run with it trains and checkpoints the iteration."""
import os
import re
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
from mmdet_ghm.engine.hooks import GHMWarmupHook
from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..host_reads import OpRecorder

BASE = 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'


class Model(torch.nn.Module):
    def __init__(self, cls_warmup=10, bbox_warmup=0):
        super().__init__()
        self.head = torch.nn.Module()
        self.head.loss_cls = GHMCLoss(bins=10, momentum=0.75, warmup=cls_warmup)
        self.head.loss_bbox = GHMRLoss(bins=5, warmup=bbox_warmup)


def fake_runner(model):
    return types.SimpleNamespace(model=model, iter=0,
                                 logger=MMLogger.get_instance('ghm_warmup_hook_fake'))


def test_sets_runner_iter_on_warmup_losses_only(eager_kernels):
    model = Model(cls_warmup=10, bbox_warmup=0)
    runner = fake_runner(model)
    hook = GHMWarmupHook()
    hook.before_train(runner)
    assert [path for path, _ in hook.losses] == ['head.loss_cls']
    for it in (0, 1, 7, 25):  # 7 after a resume: the runner's counter, not a count of calls
        runner.iter = it
        with OpRecorder() as mode:
            hook.before_train_iter(runner, batch_idx=it % 5)
        assert mode.host_reads == []
        assert model.head.loss_cls.warmup_iter.item() == it
        # the loss runs in training mode once its iteration is set
        model.head.loss_cls(torch.randn(8, 3), torch.randint(0, 4, (8,)), torch.ones(8))
    assert not hasattr(model.head.loss_bbox, 'warmup_iter')


def test_warns_when_no_loss_has_a_warmup():
    runner = fake_runner(Model(cls_warmup=0))
    hook = GHMWarmupHook()
    logged = []
    runner.logger = types.SimpleNamespace(warning=logged.append, info=logged.append)
    hook.before_train(runner)
    assert hook.losses == [] and 'no GHM loss' in logged[0]
    hook.before_train_iter(runner, 0)  # nothing to do


class IterRecorder(Hook):
    """The warm-up iteration the loss sees at each training iteration."""
    priority = 'LOW'  # after GHMWarmupHook (NORMAL) in before_train_iter

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        loss = runner.model.bbox_head.loss_cls
        self.seen.append((runner.iter, int(loss.warmup_iter)))


def _config(root, data_root, max_epochs, custom_hooks):
    cfg = Config.fromfile(BASE)
    cfg.merge_from_dict({
        'model.bbox_head.loss_cls': dict(_delete_=True, type='GHMCLoss', bins=30,
                                         momentum=0.75, use_sigmoid=True, loss_weight=1.0,
                                         warmup=6),
        'model.bbox_head.loss_bbox': dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10,
                                          momentum=0.7, loss_weight=10.0, warmup=6),
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.generator_cfg': dict(seed=0, num_train=6, num_val=2),
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs')],
        'train_cfg': dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10),
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1),
        'custom_hooks': custom_hooks,
    })
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.param_scheduler = None
    cfg.work_dir = str(root / 'work')
    return cfg


@pytest.fixture
def synthetic_root(tmp_path):
    data_root = str(tmp_path / 'data') + '/'
    ensure_synthetic_shapes(data_root, seed=0, num_train=6, num_val=2)
    old = os.environ.get('MMDET_GHM_COMPILE')
    os.environ['MMDET_GHM_COMPILE'] = '0'
    yield tmp_path, data_root
    if old is None:
        del os.environ['MMDET_GHM_COMPILE']
    else:
        os.environ['MMDET_GHM_COMPILE'] = old


def test_training_run_checkpoints_and_resumes_the_iteration(synthetic_root):
    root, data_root = synthetic_root
    hooks = [dict(type='GHMWarmupHook')]
    runner = Runner.from_cfg(_config(root, data_root, 1, hooks))
    recorder = IterRecorder()
    runner.register_hook(recorder)
    runner.train()  # 3 iterations
    assert recorder.seen == [(0, 0), (1, 1), (2, 2)]
    state = torch.load(f'{runner.work_dir}/epoch_1.pth', weights_only=True)['state_dict']
    assert int(state['bbox_head.loss_cls.warmup_iter']) == 2
    assert int(state['bbox_head.loss_bbox.warmup_iter']) == 2

    cfg = _config(root, data_root, 2, hooks)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    recorder = IterRecorder()
    resumed.register_hook(recorder)
    resumed.train()
    assert recorder.seen == [(3, 3), (4, 4), (5, 5)]


def test_training_without_the_hook_names_it(synthetic_root):
    root, data_root = synthetic_root
    runner = Runner.from_cfg(_config(root, data_root, 1, []))
    with pytest.raises(RuntimeError, match=re.escape("custom_hooks=[dict(type='GHMWarmupHook')]")):
        runner.train()
