"""GHMStatsHook: real training run (text log, scalars.json, TensorBoard), values
against a direct computation pooled over every iteration of each logging
window (the epoch's partial last window included), no host copies between
logging iterations, and the losses with statistics under
torch.compile(fullgraph=True)."""
import json
import re
import types

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner

from mmdet_ghm.datasets.synthetic_shapes import ensure_synthetic_shapes
from mmdet_ghm.engine.hooks import GHMStatsHook
from mmdet_ghm.engine.hooks.ghm_stats_hook import short_names, summarize
from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..host_reads import OpRecorder, record_host_copies

BASE = 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'


# --------------------------------------------------------------------------
# direct computation of what the hook must report
# --------------------------------------------------------------------------

def direct_stats(calls, edges, momentum, acc_sum, kind, mu=0.02, positives=False):
    """Counts, weight share, final EMA and total weights of ``calls``, in order
    (``positives``: and the positives' counts and total weights per region, GHM-C).

    ``calls``: the ``(pred, target, weight)`` of every loss call of one
    iteration, or of every iteration of a window one after the other
    (:func:`window_calls`); ``acc_sum``: the EMA before the first of them.
    Counts and weights are summed over the calls, the share is of their total.
    """
    bins = len(edges) - 1
    counts_total, weight_total = np.zeros(bins), np.zeros(bins)
    positive_counts, positive_weights = np.zeros(bins), np.zeros(bins)
    density = acc_sum.double().numpy().copy() if acc_sum is not None else None
    for pred, target, weight in calls:
        if kind == 'cls':
            classes = torch.arange(pred.shape[1])
            t = (target[:, None] == classes).float()
            g = (pred.float().sigmoid() - t).abs()
            valid = (weight[:, None] > 0).expand_as(g)
            total = max(int(valid.sum()), 1)
            is_positive = t[valid].bool().numpy()
        else:
            d = pred.float() - target.float()
            g = d.abs() / torch.sqrt(d * d + mu * mu)
            valid = weight > 0
            total = max(float(weight.sum()), 1.0)
        g = g[valid].numpy()
        region = np.clip(np.searchsorted(edges.numpy(), g, side='right') - 1, 0, bins - 1)
        counts = np.bincount(region, minlength=bins).astype(np.float64)
        if density is not None:
            density = np.where(counts > 0, momentum * density + (1 - momentum) * counts, density)
            dens = density
        else:
            dens = counts
        n = max((counts > 0).sum(), 1)
        beta = np.where(counts > 0, total / np.where(counts > 0, dens, 1) / n, 0)
        counts_total += counts
        weight_total += counts * beta
        if kind == 'cls':
            positive = np.bincount(region[is_positive], minlength=bins).astype(np.float64)
            positive_counts += positive
            positive_weights += positive * beta
    out = (counts_total, weight_total / weight_total.sum(), density, weight_total)
    return out + (positive_counts, positive_weights) if positives else out


def window_calls(per_iter, steps, name):
    """The loss calls of module ``name`` in the iterations ``steps`` (a window), in order,
    and the EMA before the first of them."""
    calls = [call for step in steps for call in per_iter[step][0][name]]
    return calls, per_iter[steps[0]][1][name]


class Recorder(Hook):
    """Inputs of every GHM loss call, per iteration, and the EMA before it."""
    priority = 'VERY_HIGH'

    def __init__(self):
        self.calls, self.start_acc, self.per_iter = {}, {}, {}

    def before_train(self, runner):
        self.modules = {n: m for n, m in runner.model.named_modules()
                        if isinstance(m, (GHMCLoss, GHMRLoss))}
        for name, module in self.modules.items():
            module.register_forward_pre_hook(self._make(name))

    def _make(self, name):
        def pre_hook(module, args):
            self.calls[name].append(tuple(a.detach().clone() for a in args[:3]))
        return pre_hook

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.calls = {n: [] for n in self.modules}
        self.start_acc = {n: m.acc_sum.clone() for n, m in self.modules.items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.per_iter[runner.iter + 1] = (self.calls, self.start_acc)


#: The logging windows of the ``trained`` run: logged step -> its iterations.
#: Steps 2 and 4 are the logger's; step 5, the epoch's partial last window, the
#: logger skips (ignore_last=True, 5 > 2 iterations), and the hook logs.
WINDOWS = {2: (1, 2), 4: (3, 4), 5: (5,)}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 5-iteration GHM training run with the hook, logger interval 2."""
    import os
    old = os.environ.get('MMDET_GHM_COMPILE')
    os.environ['MMDET_GHM_COMPILE'] = '0'
    root = tmp_path_factory.mktemp('ghm_stats')
    data_root = str(root / 'data') + '/'
    ensure_synthetic_shapes(data_root, seed=0, num_train=10, num_val=2)
    cfg = Config.fromfile(BASE)
    cfg.merge_from_dict({
        'model.bbox_head.loss_cls': dict(_delete_=True, type='GHMCLoss', bins=30,
                                         momentum=0.75, use_sigmoid=True, loss_weight=1.0),
        'model.bbox_head.loss_bbox': dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10,
                                          momentum=0.7, loss_weight=10.0),
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.generator_cfg': dict(seed=0, num_train=10, num_val=2),
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs')],
        'train_cfg': dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=10),
        'default_hooks.logger.interval': 2,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10),
        'custom_hooks': [dict(type='GHMStatsHook')],
        'visualizer': dict(type='DetLocalVisualizer', name='ghm_stats_vis',
                           vis_backends=[dict(type='LocalVisBackend'),
                                         dict(type='TensorboardVisBackend')]),
    })
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.param_scheduler = None
    cfg.work_dir = str(root / 'work')
    cfg.experiment_name = 'ghm_stats_hook_test'
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    assert sorted(recorder.per_iter) == [1, 2, 3, 4, 5]
    if old is None:
        del os.environ['MMDET_GHM_COMPILE']
    else:
        os.environ['MMDET_GHM_COMPILE'] = old
    return runner, recorder


def _json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_summary_scalars_in_text_log_and_scalars_json(trained):
    runner, _ = trained
    log_text = open(f'{runner.log_dir}/{runner.timestamp}.log').read()
    lines = [line for line in log_text.splitlines() if 'Epoch(train)' in line]
    assert len(lines) == 2  # iterations 2 and 4; the logger skips the partial window (5)
    for line in lines:
        for key in ('ghm_cls/regions', 'ghm_cls/w_easy', 'ghm_cls/w_hard',
                    'ghm_bbox/regions', 'ghm_bbox/easy_frac', 'ghm_cls/w_hard_half',
                    'ghm_cls/beta_max', 'ghm_bbox/w_hard_half', 'ghm_bbox/beta_max'):
            assert re.search(rf'{re.escape(key)}: [0-9.]+', line), (key, line)
        assert 'count_00' not in line  # per-region values stay out of the text log
    records = _json_lines(f'{runner.log_dir}/vis_data/scalars.json')
    logged = [r for r in records if 'ghm_cls/w_easy' in r]
    assert [r['step'] for r in logged] == [2, 4]
    per_region = [r for r in records if 'ghm/bbox_head.loss_cls/count_00' in r]
    assert [r['step'] for r in per_region] == [2, 4, 5]  # the hook logs the partial window
    assert [r['ghm/window_iters'] for r in per_region] == [2, 2, 1]
    assert set(r for r in per_region[0] if r.startswith('ghm/bbox_head.loss_bbox/density_')) \
        == {f'ghm/bbox_head.loss_bbox/density_{j:02d}' for j in range(10)}
    assert _json_lines(f'{runner.log_dir}/vis_data/ghm_stats.json') == per_region


def test_logged_histogram_equals_direct_computation_pooled_over_the_window(trained):
    runner, recorder = trained
    records = {r['step']: r for r in _json_lines(f'{runner.log_dir}/vis_data/ghm_stats.json')}
    assert sorted(records) == sorted(WINDOWS)
    head = runner.model.bbox_head
    hub = runner.message_hub
    for (name, module, kind, short) in (('bbox_head.loss_cls', head.loss_cls, 'cls', 'cls'),
                                        ('bbox_head.loss_bbox', head.loss_bbox, 'reg', 'bbox')):
        # the summaries of every window, the partial one included, in the message hub
        history = {key: list(hub.get_scalar(f'train/ghm_{short}/{key}').data[0])
                   for key in ('regions', 'easy_frac', 'w_easy', 'w_hard', 'w_hard_half',
                               'beta_max')}
        assert all(len(values) == len(WINDOWS) for values in history.values()), history
        for i, (step, steps) in enumerate(WINDOWS.items()):
            calls, start_acc = window_calls(recorder.per_iter, steps, name)
            assert len(calls) == 3 * len(steps)  # one call per FPN level and iteration
            counts, share, density, weights, positive, positive_weights = direct_stats(
                calls, module.edges, module.momentum, start_acc, kind, positives=True)
            # pooling matters: the window's last iteration alone has fewer elements
            last_calls, last_acc = window_calls(recorder.per_iter, steps[-1:], name)
            last = direct_stats(last_calls, module.edges, module.momentum, last_acc, kind)[0]
            assert (counts.sum() > last.sum()) == (len(steps) > 1)
            rec = records[step]
            assert rec['ghm/window_iters'] == len(steps)
            got = lambda f: np.array([rec[f'ghm/{name}/{f}_{j:02d}']  # noqa: E731
                                      for j in range(module.bins)])
            np.testing.assert_array_equal(got('count'), counts)
            np.testing.assert_allclose(got('weight_share'), share, rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(got('density'), density, rtol=1e-5)
            expected = summarize(counts, share)
            assert history['regions'][i] == expected['regions'] == (counts > 0).sum()
            assert history['easy_frac'][i] == pytest.approx(counts[0] / counts.sum())
            assert history['w_easy'][i] == pytest.approx(share[0], rel=1e-5)
            hard = np.flatnonzero(counts)[-1]
            assert rec[f'ghm/{name}/hard_region'] == hard
            assert history['w_hard'][i] == pytest.approx(share[hard], rel=1e-5)
            hard_half = module.edges[:-1].numpy() >= 0.5
            assert 0 < hard_half.sum() < module.bins
            assert history['w_hard_half'][i] == pytest.approx(share[hard_half].sum(), rel=1e-5)
            assert history['beta_max'][i] == pytest.approx(
                (weights[counts > 0] / counts[counts > 0]).max(), rel=1e-5)
            if kind == 'reg':  # GHM-R's elements are all positives' coordinates
                assert f'ghm/{name}/pos_count_00' not in rec
                assert f'train/ghm_{short}/w_pos' not in hub.log_scalars
                continue
            # the positives (the labelled class of each anchor) apart
            assert 0 < positive.sum() < counts.sum()
            np.testing.assert_array_equal(got('pos_count'), positive)
            np.testing.assert_allclose(got('pos_weight_share'), positive_weights / weights.sum(),
                                       rtol=1e-5, atol=1e-12)
            assert list(hub.get_scalar('train/ghm_cls/w_pos').data[0])[i] == pytest.approx(
                positive_weights.sum() / weights.sum(), rel=1e-5)
            assert list(hub.get_scalar('train/ghm_cls/pos_frac').data[0])[i] == pytest.approx(
                positive.sum() / counts.sum())
    # the text log's summaries (steps 2 and 4) are the message hub's
    summaries = {r['step']: r for r in _json_lines(f'{runner.log_dir}/vis_data/scalars.json')
                 if 'ghm_cls/w_easy' in r}
    assert sorted(summaries) == [2, 4]
    cls_easy = list(hub.get_scalar('train/ghm_cls/w_easy').data[0])
    assert [summaries[2]['ghm_cls/w_easy'], summaries[4]['ghm_cls/w_easy']] == pytest.approx(
        cls_easy[:2])
    # the last logged density is the EMA the model ends with
    np.testing.assert_allclose(
        [records[5][f'ghm/bbox_head.loss_cls/density_{j:02d}'] for j in range(30)],
        head.loss_cls.acc_sum.numpy(), rtol=1e-6)


def test_tensorboard_gets_scalars_and_histograms(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    runner, _ = trained
    acc = EventAccumulator(f'{runner.log_dir}/vis_data',
                           size_guidance={'scalars': 0, 'histograms': 0})
    acc.Reload()
    tags = acc.Tags()
    assert 'ghm_cls/w_easy' in tags['scalars']
    assert 'ghm/bbox_head.loss_bbox/weight_share_09' in tags['scalars']
    assert [e.step for e in acc.Scalars('ghm_bbox/w_hard')] == [2, 4]
    hist = acc.Histograms('ghm/bbox_head.loss_cls/regions')
    assert [h.step for h in hist] == [2, 4, 5]
    records = {r['step']: r for r in _json_lines(f'{runner.log_dir}/vis_data/ghm_stats.json')}
    counts = [records[5][f'ghm/bbox_head.loss_cls/count_{j:02d}'] for j in range(30)]
    assert list(hist[-1].histogram_value.bucket) == counts
    assert hist[-1].histogram_value.num == sum(counts)


# --------------------------------------------------------------------------
# no host copies between logging iterations (fake runner, hook in isolation)
# --------------------------------------------------------------------------


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Module()
        self.head.loss_cls = GHMCLoss(bins=10, momentum=0.75)
        self.head.loss_bbox = GHMRLoss(bins=5)


def fake_runner(model, interval, iters):
    visualizer = types.SimpleNamespace(calls=[], _vis_backends={})
    visualizer.add_scalars = lambda d, step, file_path=None: visualizer.calls.append((step, d))
    return types.SimpleNamespace(
        model=model, hooks=[LoggerHook(interval=interval)], train_dataloader=[None] * iters,
        iter=0, max_iters=iters, message_hub=MessageHub.get_instance('ghm_stats_hook_fake'),
        visualizer=visualizer, logger=MMLogger.get_instance('ghm_stats_hook_fake'),
        log_processor=types.SimpleNamespace(mean_pattern=re.compile(r'.*(loss|time).*')))


def test_no_host_copy_between_logging_iterations(eager_kernels, monkeypatch):
    model = Model()
    runner = fake_runner(model, interval=3, iters=6)
    hook = GHMStatsHook()
    hook.before_train(runner)
    assert hook.interval == 3
    copies = record_host_copies(monkeypatch)

    expected = {}
    for batch_idx in range(6):
        runner.iter = batch_idx
        copies.clear()
        with OpRecorder() as mode:
            hook.before_train_iter(runner, batch_idx)
        assert mode.host_reads == [] and copies == []
        # the losses (outside the check: on CPU their bincount reads memory by design)
        logits = torch.randn(40, 3) * (batch_idx + 1)
        model.head.loss_cls(logits, torch.randint(0, 4, (40,)), torch.ones(40))
        model.head.loss_bbox(torch.randn(20, 4) * 0.05, torch.zeros(20, 4), torch.ones(20, 4))
        expected[batch_idx] = {n: m.region_summary() for n, m in
                               (('cls', model.head.loss_cls), ('bbox', model.head.loss_bbox))}
        copies.clear()
        with OpRecorder() as mode:
            hook.after_train_iter(runner, batch_idx)
        if batch_idx in (2, 5):
            # one transfer (.cpu()) for all modules; .numpy() then reads host memory
            assert copies == ['cpu', 'numpy'] and mode.host_reads == [], (copies, mode.host_reads)
        else:
            assert copies == [] and mode.host_reads == [], (batch_idx, copies, mode.host_reads)
    monkeypatch.undo()
    assert [step for step, _ in runner.visualizer.calls] == [3, 6]
    hub = runner.message_hub
    for name in ('cls', 'bbox'):
        summary = expected[5][name]
        counts = summary['counts'].numpy()
        assert hub.get_scalar(f'train/ghm_{name}/regions').current() == (counts > 0).sum()
        assert hub.get_scalar(f'train/ghm_{name}/w_easy').current() == pytest.approx(
            float(summary['weight_share'][0]))
        for key, field in (('w_hard_half', 'hard_half_share'), ('beta_max', 'beta_max')):
            assert hub.get_scalar(f'train/ghm_{name}/{key}').current() == pytest.approx(
                float(summary[field]))
        # the window's statistics: the calls of its three iterations (3, 4 and 5)
        assert counts.sum() == 3 * (120 if name == 'cls' else 80)


def test_windows_pool_every_iteration_and_the_partial_last_one_is_logged(eager_kernels):
    """Two epochs of 7 iterations, interval 3: the logger logs iterations 3 and 6 of each
    epoch and skips the 7th (ignore_last, 7 > 3); the hook logs it, alone, as a window."""
    model = Model()
    runner = fake_runner(model, interval=3, iters=7)
    runner.message_hub = MessageHub.get_instance('ghm_stats_hook_windows')
    runner.max_iters = 14
    hook = GHMStatsHook()
    hook.before_train(runner)
    assert runner.hooks[0].ignore_last
    assert [hook.is_logging_iter(runner, i) for i in range(7)] == [
        False, False, True, False, False, True, False]
    assert [hook.is_window_end(runner, i) for i in range(7)] == [
        False, False, True, False, False, True, True]
    inputs = {}
    for epoch in range(2):
        hook.before_train_epoch(runner)
        for batch_idx in range(7):
            step = 7 * epoch + batch_idx + 1
            runner.iter = step - 1
            # a different number of elements per iteration: the counts tell which were pooled
            n = 10 * step
            cls = (torch.randn(n, 3) * step, torch.randint(0, 4, (n,)), torch.ones(n))
            reg = (torch.randn(n, 4) * 0.05, torch.zeros(n, 4), torch.ones(n, 4))
            inputs[step] = dict(cls=[cls], reg=[reg], acc=model.head.loss_cls.acc_sum.clone())
            hook.before_train_iter(runner, batch_idx)
            model.head.loss_cls(*cls)
            model.head.loss_bbox(*reg)
            hook.after_train_iter(runner, batch_idx)
    windows = {3: (1, 2, 3), 6: (4, 5, 6), 7: (7,), 10: (8, 9, 10), 13: (11, 12, 13),
               14: (14,)}
    assert [step for step, _ in runner.visualizer.calls] == list(windows)
    logged = dict(runner.visualizer.calls)
    hub = runner.message_hub
    for name, path, module, kind in (('cls', 'head.loss_cls', model.head.loss_cls, 'cls'),
                                     ('bbox', 'head.loss_bbox', model.head.loss_bbox, 'reg')):
        easy = list(hub.get_scalar(f'train/ghm_{name}/easy_frac').data[0])
        w_hard_half = list(hub.get_scalar(f'train/ghm_{name}/w_hard_half').data[0])
        beta_max = list(hub.get_scalar(f'train/ghm_{name}/beta_max').data[0])
        assert len(easy) == len(w_hard_half) == len(beta_max) == len(windows)
        for i, (step, steps) in enumerate(windows.items()):
            calls = [call for s in steps for call in inputs[s][kind]]
            start_acc = inputs[steps[0]]['acc'] if kind == 'cls' else None
            counts, share, density, weights = direct_stats(
                calls, module.edges, module.momentum, start_acc, kind)
            elements = sum(10 * s * (3 if kind == 'cls' else 4) for s in steps)
            assert counts.sum() == elements
            record = logged[step]
            assert record['ghm/window_iters'] == len(steps)
            got = lambda f: np.array([record[f'ghm/{path}/{f}_{j:02d}']  # noqa: E731
                                      for j in range(module.bins)])
            np.testing.assert_array_equal(got('count'), counts)
            np.testing.assert_allclose(got('weight_share'), share, rtol=1e-5, atol=1e-9)
            # the EMA at the window's end; without momentum (GHM-R here) the window's counts
            np.testing.assert_allclose(got('density'), counts if density is None else density,
                                       rtol=1e-5)
            assert easy[i] == pytest.approx(counts[0] / counts.sum())
            hard_half = module.edges[:-1].numpy() >= 0.5
            assert w_hard_half[i] == pytest.approx(share[hard_half].sum(), rel=1e-5, abs=1e-9)
            assert beta_max[i] == pytest.approx(
                (weights[counts > 0] / counts[counts > 0]).max(), rel=1e-5)


def test_warning_reads_the_pooled_window(eager_kernels):
    """The signature in 3 of the 4 iterations of the last window: its last iteration alone
    is clean, the window is not."""
    model = Model()
    runner = fake_runner(model, interval=4, iters=20)
    runner.logger = ListLogger()
    hook = GHMStatsHook(warn_window=0.2)   # late: the window logged at step 20
    hook.before_train(runner)
    _drive(hook, runner, model, 16, 0.0)
    for batch_idx in range(16, 20):
        runner.iter = batch_idx
        hook.before_train_iter(runner, batch_idx)
        logits = torch.full((400, 1), -8.0)
        if batch_idx < 19:
            logits[:120] = float(torch.logit(torch.tensor(0.3)))
        model.head.loss_cls(logits, torch.ones(400, dtype=torch.long), torch.ones(400))
        hook.after_train_iter(runner, batch_idx)
    hook.after_train(runner)
    # (3 * 280 + 400) / 1600 of the window's elements in the easiest region, no g >= 0.5
    assert hook._late == {'head.loss_cls': [(0.0, pytest.approx(0.775))]}
    messages = _warnings(runner)
    assert len(messages) == 1, messages
    assert messages[0].startswith('GHMStatsHook: over the last 20% of training (1 logged '
                                  'window, 4 iterations), head.loss_cls had only 0.78 of its '
                                  'elements in the easiest region')


def test_losses_with_statistics_compile_with_fullgraph(eager_kernels):
    torch._dynamo.reset()
    step = torch.compile(lambda loss, *args: loss(*args), fullgraph=True, dynamic=True)
    for make, args in (
            (lambda: GHMCLoss(bins=30, momentum=0.75),
             lambda: (torch.randn(300, 6) * 3, torch.randint(0, 7, (300,)),
                      (torch.rand(300) > 0.1).float())),
            (lambda: GHMRLoss(bins=10, momentum=0.7),
             lambda: (torch.randn(100, 4) * 0.1, torch.randn(100, 4) * 0.1,
                      torch.ones(100, 4)))):
        eager, compiled = make(), make()
        for _ in range(2):
            inputs = args()
            for module in (eager, compiled):
                module.reset_region_stats()
            eager(*inputs)
            step(compiled, *inputs)
            a, b = eager.region_summary(), compiled.region_summary()
            assert a['counts'].sum() > 0
            torch.testing.assert_close(b['counts'], a['counts'])
            torch.testing.assert_close(b['weight_share'], a['weight_share'], rtol=1e-5, atol=0)
            torch.testing.assert_close(b['density'], a['density'], rtol=1e-5, atol=0)


# --------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------

def test_short_names_drop_loss_and_disambiguate():
    assert short_names(['bbox_head.loss_cls', 'bbox_head.loss_bbox']) == {
        'bbox_head.loss_cls': 'cls', 'bbox_head.loss_bbox': 'bbox'}
    assert short_names(['a.loss_cls', 'b.loss_cls']) == {'a.loss_cls': 'a.cls',
                                                        'b.loss_cls': 'b.cls'}


def test_summarize_defines_the_hardest_region_as_the_last_non_empty_one():
    counts = np.array([90., 0., 6., 4., 0.])
    share = np.array([0.1, 0., 0.3, 0.6, 0.])
    assert summarize(counts, share) == dict(regions=3, easy_frac=0.9, w_easy=0.1, w_hard=0.6,
                                            hard_region=3)
    assert summarize(np.zeros(3), np.zeros(3))['hard_region'] == -1


@pytest.mark.parametrize('bad', [0, -2, 1.5, True, '10'])
def test_bad_interval_is_rejected(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        GHMStatsHook(interval=bad)


def test_own_interval_and_model_without_ghm_losses(eager_kernels):
    runner = fake_runner(torch.nn.Linear(2, 2), interval=3, iters=4)
    hook = GHMStatsHook(interval=2)
    hook.before_train(runner)
    assert hook.interval == 2 and hook.losses == []
    for batch_idx in range(4):
        hook.before_train_iter(runner, batch_idx)
        hook.after_train_iter(runner, batch_idx)
    assert runner.visualizer.calls == []
    runner = fake_runner(Model(), interval=3, iters=4)
    hook = GHMStatsHook(interval=2)
    hook.before_train(runner)
    assert [hook.is_logging_iter(runner, i) for i in range(4)] == [False, True, False, True]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_no_sync_between_logging_iterations_on_cuda(kernel_mode):
    model = Model().cuda()
    runner = fake_runner(model, interval=3, iters=3)
    hook = GHMStatsHook()
    hook.before_train(runner)
    labels = torch.randint(0, 4, (500,), device='cuda')
    start_acc = model.head.loss_cls.acc_sum.cpu()
    calls = []
    for batch_idx in range(3):
        runner.iter = batch_idx
        logits = torch.randn(500, 3, device='cuda')
        calls.append((logits.cpu(), labels.cpu(), torch.ones(500)))
        torch.cuda.synchronize()
        if batch_idx < 2:  # the first call compiles; iterations 0 and 1 are not logged
            torch.cuda.set_sync_debug_mode('error')
        try:
            hook.before_train_iter(runner, batch_idx)
            model.head.loss_cls(logits, labels, torch.ones(500, device='cuda'))
            hook.after_train_iter(runner, batch_idx)
        finally:
            torch.cuda.set_sync_debug_mode('default')
    assert [step for step, _ in runner.visualizer.calls] == [3]
    # the logged values pool the calls of the window's three iterations
    logged = runner.visualizer.calls[0][1]
    loss = model.head.loss_cls
    counts, share, density = direct_stats(calls, loss.edges.cpu(), loss.momentum, start_acc,
                                          'cls')[:3]
    got = lambda path, field, bins: np.array(  # noqa: E731
        [logged[f'ghm/{path}/{field}_{j:02d}'] for j in range(bins)])
    assert counts.sum() == 3 * 1500 and logged['ghm/window_iters'] == 3
    np.testing.assert_array_equal(got('head.loss_cls', 'count', 10), counts)
    np.testing.assert_allclose(got('head.loss_cls', 'weight_share', 10), share, rtol=1e-5,
                               atol=1e-9)
    np.testing.assert_allclose(got('head.loss_cls', 'density', 10), density, rtol=1e-5)
    np.testing.assert_array_equal(got('head.loss_bbox', 'count', 5), np.zeros(5))  # not called


# --------------------------------------------------------------------------
# the low-AP warning
# --------------------------------------------------------------------------

def _drive(hook, runner, model, iters, fraction, g=0.9):
    """``iters`` iterations of GHM-C calls on 400 negatives: ``fraction`` of them at
    gradient norm ``g``, the others easy (g ~ 3e-4)."""
    logit = float(torch.logit(torch.tensor(g)))
    for batch_idx in range(iters):
        runner.iter = batch_idx
        hook.before_train_iter(runner, batch_idx)
        logits = torch.full((400, 1), -8.0)
        logits[:int(400 * fraction)] = logit
        model.head.loss_cls(logits, torch.ones(400, dtype=torch.long), torch.ones(400))
        hook.after_train_iter(runner, batch_idx)


class ListLogger:
    """Stands in for the runner's logger: keeps the warnings."""

    def __init__(self):
        self.warnings = []

    def info(self, message):
        pass

    def warning(self, message):
        self.warnings.append(message)


def _warnings(runner):
    return [m for m in runner.logger.warnings if m.startswith('GHMStatsHook: over the last')]


# Two non-empty regions share the weight equally (GHM gives each non-empty region
# 1 / (number of regions)), so the share of g >= 0.5 is 0.5 when the second
# region lies above 0.5, else 0; the easy fraction is 1 - fraction.
HARD = 'put 0.50 of its weight on examples with g >= 0.5 (threshold 0.25)'
EASY = 'had only 0.70 of its elements in the easiest region'


@pytest.mark.parametrize('fraction, g, signs', [
    (0.1, 0.9, [HARD]),           # hard weight share only (easy fraction 0.9)
    (0.3, 0.3, [EASY]),           # background not dismissed only (no g >= 0.5)
    (0.3, 0.9, [HARD, EASY]),
    (0.1, 0.3, []),               # neither: quiet
])
def test_warns_once_on_the_low_ap_signature(eager_kernels, fraction, g, signs):
    model = Model()
    runner = fake_runner(model, interval=1, iters=20)
    runner.logger = ListLogger()
    hook = GHMStatsHook(interval=1)
    hook.before_train(runner)
    _drive(hook, runner, model, 20, fraction, g)
    hook.after_train(runner)
    messages = _warnings(runner)
    if not signs:
        assert messages == []
        return
    # one warning, for GHM-C only, from the last 10 % of training: iterations 19 and 20
    assert len(messages) == 1, messages
    assert messages[0].startswith('GHMStatsHook: over the last 10% of training (2 logged '
                                  'windows, 2 iterations), head.loss_cls ')
    for sign in (HARD, EASY):
        assert (sign in messages[0]) == (sign in signs), messages[0]
    assert 'weight_cap=100.0' in messages[0]


def test_warning_reads_only_the_window_and_can_be_switched_off(eager_kernels):
    model = Model()
    runner = fake_runner(model, interval=1, iters=10)
    runner.logger = ListLogger()
    hook = GHMStatsHook(interval=1, warn_window=0.5)
    hook.before_train(runner)
    _drive(hook, runner, model, 5, 0.3)        # the signature early only: not read
    for batch_idx in range(5, 10):
        runner.iter = batch_idx
        hook.before_train_iter(runner, batch_idx)
        model.head.loss_cls(torch.full((40, 1), -8.0), torch.ones(40, dtype=torch.long),
                            torch.ones(40))
        hook.after_train_iter(runner, batch_idx)
    hook.after_train(runner)
    assert _warnings(runner) == []
    assert hook._late == {'head.loss_cls': [(0.0, 1.0)] * 5}
    off = GHMStatsHook(interval=1, warn_hard_share=None)
    off.before_train(runner)
    _drive(off, runner, model, 10, 0.3)
    off.after_train(runner)
    assert _warnings(runner) == []
    on = GHMStatsHook(interval=1)      # the same iterations with the warning on
    on.before_train(runner)
    _drive(on, runner, model, 10, 0.3)
    on.after_train(runner)
    assert len(_warnings(runner)) == 1


@pytest.mark.parametrize('kwargs, match', [
    (dict(warn_hard_share=0.0), 'warn_hard_share must be in'),
    (dict(warn_hard_share=1.5), '1.5'),
    (dict(warn_window=0), 'warn_window must be in'),
    (dict(warn_easy_fraction=1.2), 'warn_easy_fraction must be in'),
    (dict(warn_window='0.1'), "'0.1'"),
])
def test_bad_warning_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GHMStatsHook(**kwargs)
