"""A run stopped and resumed with RNGStateHook ends bit-identical to the uninterrupted run.

The tiny GHM-C + GHM-R RetinaNet (4 train / 2 val images of 128 px, batch 2,
random flips and photometric distortion, validation every epoch) trains
in-process on one CPU thread; the final checkpoints are compared tensor by
tensor with ``torch.equal``. Without the hook the same pair differs, so the
comparison can fail.
"""
import os.path as osp
import pickle
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmdet_ghm.engine.hooks.rng_state_hook import (CHECKPOINT_KEY, InexactResumeWarning,
                                                   RNGStateHook)
from mmdet_ghm.engine.rng_state import (capture_rng_states, restore_rng_states,
                                        worker_seed)
from mmdet_ghm.engine.worker_seeding import EpochWorkerInit

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE_CONFIG = osp.join(REPO, 'configs', 'synthetic',
                       'retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')
HOOK = dict(type='RNGStateHook')
EPOCHS = 3
ITERS = 6


def _draws():
    return (random.random(), float(np.random.rand()), np.random.normal(),
            torch.rand(3).tolist())


def test_capture_restore_round_trip_through_weights_only_load(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.normal()  # leaves a cached Gaussian in NumPy's state
    states = capture_rng_states()
    expected = _draws()
    path = tmp_path / 'states.pth'
    torch.save(states, path)
    loaded = torch.load(path, weights_only=True)
    _draws()
    assert restore_rng_states(loaded) == []
    assert _draws() == expected


@pytest.mark.parametrize('states, match', [
    ([], 'must be a dict'),
    (dict(version=99), 'version 99'),
    (dict(version=1, python=[]), "lack \\['numpy', 'torch', 'cuda'\\]"),
])
def test_restore_rejects_what_is_not_captured_states(states, match):
    with pytest.raises(ValueError, match=match):
        restore_rng_states(states)


def test_worker_seed_depends_on_every_part_and_is_stable():
    seeds = {worker_seed(s, e, r, w) for s in (0, 1) for e in (0, 1) for r in (0, 1)
             for w in (0, 1)}
    assert len(seeds) == 16
    assert worker_seed(5, 2, 0, 1) == worker_seed(5, 2, 0, 1)
    assert 0 <= worker_seed(-3, 0, 0, 0) < 2**32
    init = pickle.loads(pickle.dumps(EpochWorkerInit(seed=0, epoch=2, rank=0)))
    init(1)
    first = _draws()
    init(1)
    assert _draws() == first
    EpochWorkerInit(seed=0, epoch=3, rank=0)(1)
    assert _draws() != first


class _WorkerDraws(torch.utils.data.Dataset):
    """Two items, each a draw from Python's, NumPy's and torch's generators of the worker."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return torch.tensor([random.random(), np.random.rand(), torch.rand(()).item()],
                            dtype=torch.float64)


def _draws_seeded_by(init):
    """What a worker seeded by ``init`` draws for ``_WorkerDraws``' two items."""
    states = capture_rng_states()
    init(0)
    draws = torch.stack([_WorkerDraws()[i] for i in range(2)])
    restore_rng_states(states)
    return draws


def test_each_epoch_seeds_its_workers_from_that_epoch():
    """Epoch ``e``'s (persistent) worker draws what ``EpochWorkerInit(seed, e, rank)`` gives.

    One worker, started and stopped once per epoch by the hook: cheap even
    on 2 cores. Seeding every epoch alike (a constant epoch) would make the
    epochs draw the same numbers, and a run resumed at epoch ``e`` would
    then still match the uninterrupted run, so only this test sees it.
    """
    loader = torch.utils.data.DataLoader(_WorkerDraws(), batch_size=2, num_workers=1,
                                         persistent_workers=True)
    runner = SimpleNamespace(train_loop=SimpleNamespace(dataloader=loader), seed=7, rank=0,
                             epoch=0, iter=0)
    hook = RNGStateHook()
    drawn = []
    for epoch in (0, 1, 2, 1):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        drawn.append(torch.cat(list(loader)))
    assert not torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[1], drawn[2])
    for epoch, draws in zip((0, 1, 2, 1), drawn):
        assert torch.equal(draws, _draws_seeded_by(EpochWorkerInit(seed=7, epoch=epoch, rank=0))
                           ), f'epoch {epoch}'
    assert torch.equal(drawn[3], drawn[1])  # a restarted epoch draws its numbers again
    loader._iterator._shutdown_workers()


CONFIG = '''
_base_ = {base!r}
model = dict(bbox_head=dict(
    loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                  use_sigmoid=True, loss_weight=1.0),
    loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10,
                   momentum=0.7, loss_weight=10.0)),
    test_cfg=dict(score_thr=0.0))
data_root = {data_root!r}
generator_cfg = dict(seed=0, num_train=4, num_val=2)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={epochs}, val_interval=1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=-1))
'''


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    root = tmp_path_factory.mktemp('rng')
    path = root / 'tiny_ghm.py'
    path.write_text(CONFIG.format(base=BASE_CONFIG, data_root=str(root / 'data') + '/',
                                  epochs=EPOCHS))
    return str(path)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv('MMDET_GHM_COMPILE', '0')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(config, work_dir, hooks, stop=None, resume_from=None, iter_based=False,
           workers=0):
    """Train; return the last checkpoint (loaded with ``weights_only=True``)."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.custom_hooks = hooks
    if iter_based:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=stop or ITERS,
                             val_interval=3)
        cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
        cfg.train_dataloader.pop('batch_sampler', None)
        cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                                    begin=0, end=4)]
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False,
                                            max_keep_ckpts=-1)
        cfg.log_processor = dict(by_epoch=False)
    else:
        cfg.train_cfg.max_epochs = stop or EPOCHS
    if workers:
        cfg.train_dataloader.num_workers = workers
        cfg.train_dataloader.persistent_workers = True
    if resume_from is not None:
        cfg.resume = True
        cfg.load_from = str(resume_from)
    runner = Runner.from_cfg(cfg)
    runner.train()
    name = f'iter_{runner.iter}.pth' if iter_based else f'epoch_{runner.epoch}.pth'
    return torch.load(work_dir / name, map_location='cpu', weights_only=True)


def _differences(a, b, path='ckpt'):
    """Paths of the tensors (and other values) that are not bit-identical."""
    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and torch.equal(a, b) else [path]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f'{path}: keys {sorted(set(a) ^ set(b))}']
        return [d for key in a for d in _differences(a[key], b[key], f'{path}.{key}')]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f'{path}: length']
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f'{path}[{i}]')]
    return [] if a == b else [path]


def _compared(checkpoint):
    """Weights (GHM's buffers among them), optimizer, scheduler and generator states.

    The generator states catch a stream that drifted where this tiny model
    does not show it (nothing in it draws from torch's generator, but a
    Faster R-CNN's sampler or a dropout layer would).
    """
    return dict(state_dict=checkpoint['state_dict'], optimizer=checkpoint['optimizer'],
                param_schedulers=checkpoint['param_schedulers'],
                rng_states=checkpoint[CHECKPOINT_KEY])


def _uninterrupted_and_resumed(config, tmp_path, hooks, stop, **kwargs):
    whole = _train(config, tmp_path / 'whole', hooks, **kwargs)
    first = _train(config, tmp_path / 'first', hooks, stop=stop, **kwargs)
    name = f'iter_{stop}.pth' if kwargs.get('iter_based') else f'epoch_{stop}.pth'
    resumed = _train(config, tmp_path / 'resumed', hooks,
                     resume_from=tmp_path / 'first' / name, **kwargs)
    assert first['meta']['iter'] < whole['meta']['iter'] == resumed['meta']['iter']
    return whole, resumed


def test_resumed_epoch_run_is_bit_identical(tiny_config, tmp_path):
    whole, resumed = _uninterrupted_and_resumed(tiny_config, tmp_path, [HOOK], stop=1)
    assert CHECKPOINT_KEY in whole
    ghm_buffers = [k for k in whole['state_dict'] if k.endswith('acc_sum')]
    assert len(ghm_buffers) == 2
    assert _differences(_compared(whole), _compared(resumed)) == []


def test_without_the_hook_the_resumed_run_drifts(tiny_config, tmp_path):
    whole, resumed = _uninterrupted_and_resumed(tiny_config, tmp_path, [], stop=1)
    assert CHECKPOINT_KEY not in whole
    drifted = _differences(whole['state_dict'], resumed['state_dict'])
    assert len(drifted) > len(whole['state_dict']) // 2


def test_resumed_iteration_run_is_bit_identical(tiny_config, tmp_path):
    whole, resumed = _uninterrupted_and_resumed(tiny_config, tmp_path, [HOOK], stop=2,
                                                iter_based=True)
    assert _differences(_compared(whole), _compared(resumed)) == []


def test_resumed_run_with_persistent_workers_is_bit_identical(tiny_config, tmp_path):
    whole, resumed = _uninterrupted_and_resumed(tiny_config, tmp_path, [HOOK], stop=1,
                                                workers=1)
    assert _differences(_compared(whole), _compared(resumed)) == []


def test_checkpoint_without_states_resumes_with_one_warning(tiny_config, tmp_path):
    _train(tiny_config, tmp_path / 'plain', [], stop=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        resumed = _train(tiny_config, tmp_path / 'resumed', [HOOK],
                         resume_from=tmp_path / 'plain' / 'epoch_1.pth')
    inexact = [w for w in caught if issubclass(w.category, InexactResumeWarning)]
    assert len(inexact) == 1
    assert 'no random-number-generator states' in str(inexact[0].message)
    assert resumed['meta']['epoch'] == EPOCHS
