"""The study's training child: the record says how its GHM statistics were sampled.

One real GHM and one real FL run of two iterations through ``train_one``, and
the recorder's bookkeeping of the sampling across a resume (fake runner).
"""
import json
import os.path as osp
import types

import pytest
import torch
from mmengine.logging import MessageHub

from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
from mmdet_ghm.engine.hooks import GHMStatsHook
from mmdet_ghm.losses import GHMCLoss
from mmdet_ghm.study.child import RECORDER_KEY, ghm_stats_sampling, make_recorder, train_one

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/synthetic/retinanet_tiny-r18_fpn_{}_synthetic-shapes.py'


def _spec(tmp_path, loss):
    data_root = str(tmp_path / 'data') + '/'
    params = dict(seed=0, num_train=4, num_val=2)
    ensure_synthetic_shapes(data_root, **params)
    work_dir = tmp_path / loss
    work_dir.mkdir()
    overrides = {
        'experiment_name': f'study_child_test_{loss}',
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.generator_cfg': params,
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(96, 96), keep_ratio=True), dict(type='PackDetInputs')],
        'val_dataloader': None, 'val_evaluator': None, 'val_cfg': None,
        'visualizer.name': f'study_child_test_{loss}',
    }
    return dict(config=osp.join(REPO, CONFIG.format(loss)), config_rel=CONFIG.format(loss),
                overrides=overrides, epochs=1, seed=0, work_dir=str(work_dir), tag=loss,
                record_path=str(tmp_path / 'records' / loss / 'seed0.json'),
                threads=torch.get_num_threads(), variant=dict(name=loss), jobs=1,
                data=dict(id='test'), code=dict(commit=None, dirty=None))


@pytest.mark.parametrize('loss', ['ghm', 'fl'])
def test_the_record_says_how_ghm_statistics_were_sampled(tmp_path, eager_kernels, loss):
    record = train_one(_spec(tmp_path, loss), echo=lambda line: None)
    with open(tmp_path / 'records' / loss / 'seed0.json') as f:
        assert json.load(f) == json.loads(json.dumps(record))
    assert record['iters'] == 2
    # every run with a sigmoid loss_cls logs how it splits the classification gradient
    assert [s['epoch'] for s in record['cls_grad_stats']] == [1]
    shares = record['cls_grad_stats'][0]
    assert 0 < shares['pos_frac'] < shares['pos_share'] < 1, shares
    assert 0 <= shares['neg_overlap'] <= 1 and 0 <= shares['pos_hard'] <= 1
    if loss == 'fl':  # no GHM loss: no statistics, and nothing said about their sampling
        assert record['ghm_stats'] == [] and 'ghm_stats_sampling' not in record
        return
    assert record['ghm_stats_sampling'] == GHMStatsHook.SAMPLING == 'window'
    # one epoch of 2 iterations, logger interval 10: one window, both iterations
    assert [s['epoch'] for s in record['ghm_stats']] == [1]
    assert 1 <= record['ghm_stats'][0]['cls/regions'] <= 30


def _fake_runner(hooks, epoch=0, hub='study_child_test'):
    message_hub = MessageHub.get_instance(hub)
    return types.SimpleNamespace(hooks=hooks, epoch=epoch, message_hub=message_hub)


def _with_losses(hook):
    hook.losses = [('head.loss_cls', GHMCLoss(bins=10))]
    return hook


def test_sampling_of_the_run_is_that_of_its_hook_when_it_has_ghm_losses():
    assert ghm_stats_sampling(_fake_runner([_with_losses(GHMStatsHook())])) == 'window'
    assert ghm_stats_sampling(_fake_runner([GHMStatsHook()])) is None  # no GHM loss found
    assert ghm_stats_sampling(_fake_runner([])) is None

    class Before(GHMStatsHook):  # the hook as it was: one batch per logging iteration
        SAMPLING = 'last-batch'
    assert ghm_stats_sampling(_fake_runner([_with_losses(Before())])) == 'last-batch'


def test_a_run_resumed_across_the_change_is_mixed(tmp_path):
    runner = _fake_runner([_with_losses(GHMStatsHook())], hub='study_child_test_resume')
    recorder = make_recorder(str(tmp_path / 'progress.json'), 'ghm', lambda line: None)
    recorder.after_train_epoch(runner)       # nothing logged yet: no statistics, no sampling
    assert recorder.ghm_stats == [] and recorder.ghm_stats_sampling is None
    runner.message_hub.update_scalar('train/ghm_cls/easy_frac', 0.9)
    runner.message_hub.update_scalar('train/ghm_cls/easy_frac', 0.7)
    recorder.after_train_epoch(runner)
    assert recorder.ghm_stats == [{'epoch': 1, 'cls/easy_frac': pytest.approx(0.8)}]
    assert recorder.ghm_stats_sampling == 'window'
    checkpoint = dict(meta=dict(epoch=1))
    recorder.before_save_checkpoint(runner, checkpoint)
    assert checkpoint[RECORDER_KEY]['ghm_stats_sampling'] == 'window'

    resumed = make_recorder(str(tmp_path / 'progress.json'), 'ghm', lambda line: None)
    resumed.after_load_checkpoint(runner, checkpoint)
    assert resumed.ghm_stats_sampling == 'window'
    # a checkpoint of the recorder before the field: its statistics were one batch each
    old = {key: value for key, value in checkpoint[RECORDER_KEY].items()
           if key != 'ghm_stats_sampling'}
    resumed.after_load_checkpoint(runner, {RECORDER_KEY: old, 'meta': dict(epoch=1)})
    assert resumed.ghm_stats_sampling == 'last-batch'
    runner.epoch = 1
    runner.message_hub.update_scalar('train/ghm_cls/easy_frac', 0.6)
    resumed.after_train_epoch(runner)
    assert [s['epoch'] for s in resumed.ghm_stats] == [1, 2]
    assert resumed.ghm_stats_sampling == 'mixed'
    # an old checkpoint without statistics (e.g. an FL run's) leaves nothing to mix
    empty = dict(old, ghm_stats=[])
    fresh = make_recorder(str(tmp_path / 'progress.json'), 'ghm', lambda line: None)
    fresh.after_load_checkpoint(runner, {RECORDER_KEY: empty, 'meta': dict(epoch=1)})
    assert fresh.ghm_stats_sampling is None


def test_the_gradient_share_hook_is_added_to_sigmoid_classification_losses_only():
    from mmdet.models.losses import CrossEntropyLoss, FocalLoss

    from mmdet_ghm.engine.hooks import ClsGradientShareHook
    from mmdet_ghm.study.child import add_cls_gradient_share_hook

    def runner_with(loss):
        model = torch.nn.Module()
        model.bbox_head = torch.nn.Module()
        model.bbox_head.loss_cls = loss
        runner = types.SimpleNamespace(model=model, hooks=[])
        runner.register_hook = runner.hooks.append
        return runner

    runner = runner_with(FocalLoss())
    assert add_cls_gradient_share_hook(runner)
    assert [type(h) for h in runner.hooks] == [ClsGradientShareHook]
    assert runner.hooks[0].loss == 'bbox_head.loss_cls'
    assert not add_cls_gradient_share_hook(runner)  # a config's own hook is kept, not doubled
    assert len(runner.hooks) == 1
    softmax = runner_with(CrossEntropyLoss(use_sigmoid=False))  # SSD's head
    assert not add_cls_gradient_share_hook(softmax) and softmax.hooks == []
    no_head = types.SimpleNamespace(model=torch.nn.Linear(2, 2), hooks=[])
    assert not add_cls_gradient_share_hook(no_head)
