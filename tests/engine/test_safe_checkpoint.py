"""Checkpoints save and load with ``weights_only=True`` once mmdet_ghm is
imported; code-running pickles are refused unless explicitly trusted."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner import runner as runner_module
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import mmdet_ghm  # noqa: F401  (installs the safe loader)
from mmdet_ghm.engine import safe_checkpoint as sc


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        out = self.linear(torch.stack(x) if isinstance(x, list) else x)
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class _ToyDataset(Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[(1, 2, 3), (4, 5, 6)])

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(x=torch.tensor([float(idx), 1.0]))


def _toy_runner(work_dir, name, max_iters, resume_from=None):
    return Runner(
        model=_ToyModel(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=_ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                 end=3)
        ],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume_from is not None,
        load_from=resume_from,
        default_scope='mmengine')


class _RunsShell:
    """Pickles to ``os.system(command)``: a code-execution payload."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command, ))


class _GetattrGadget:
    """Pickles to ``getattr(OrderedDict, 'fromkeys')``."""

    def __reduce__(self):
        return (getattr, (OrderedDict, 'fromkeys'))


def _history_buffer(values, counts):
    buf = HistoryBuffer()
    for v, c in zip(values, counts):
        buf.update(v, c)
    return buf


def _sample_checkpoint():
    state_dict = OrderedDict(w=torch.arange(3.0))
    state_dict._metadata = OrderedDict({'': {'version': 1}})
    return {
        'state_dict': state_dict,
        'meta': {'seed': 3, 'dataset_meta': {'classes': ('a', 'b')}},
        'message_hub': {
            'log_scalars': OrderedDict({
                'train/loss': _history_buffer([0.5, 0.25, 0.125], [1, 2, 1]),
            }),
            'runtime_info': OrderedDict(
                eta=np.float64(1.5), step=np.int64(7),
                grid=np.arange(6, dtype=np.int32).reshape(2, 3)),
            'resumed_keys': OrderedDict({'train/loss': True, 'eta': True}),
        },
    }


def test_to_safe_output_loads_with_bare_weights_only_torch_load(tmp_path):
    ckpt = _sample_checkpoint()
    before = pickle.dumps(ckpt)
    path = tmp_path / 'new.pth'
    torch.save(sc.to_safe(ckpt), path)
    assert pickle.dumps(ckpt) == before, 'to_safe must not modify its input'
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []

    loaded = sc.from_safe(torch.load(path, weights_only=True))
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    np.testing.assert_array_equal(buf._log_history, [0.5, 0.25, 0.125])
    np.testing.assert_array_equal(buf._count_history, [1, 2, 1])
    assert buf.mean() == pytest.approx(0.875 / 4)  # sum(log) / sum(count)
    info = loaded['message_hub']['runtime_info']
    assert type(info['eta']) is np.float64 and info['eta'] == 1.5
    assert type(info['step']) is np.int64 and info['step'] == 7
    assert info['grid'].dtype == np.int32
    np.testing.assert_array_equal(info['grid'], np.arange(6).reshape(2, 3))
    assert loaded['state_dict']._metadata == {'': {'version': 1}}
    assert loaded['meta'] == ckpt['meta']


def test_install_is_idempotent_and_wraps_runner_save():
    wrapped = runner_module.save_checkpoint
    sc.install_safe_checkpoint_loading()
    sc.install_safe_checkpoint_loading()
    assert runner_module.save_checkpoint is wrapped
    assert wrapped._mmdet_ghm_safe
    assert not getattr(wrapped.__wrapped__, '_mmdet_ghm_safe', False)
    assert CheckpointLoader._get_checkpoint_loader('/x.pth') is \
        sc.load_from_local


def test_runner_checkpoints_need_no_unsafe_globals(tmp_path):
    runner = _toy_runner(tmp_path / 'a', 'toy_a', max_iters=4)
    runner.train()
    path = tmp_path / 'a' / 'iter_4.pth'
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    raw = torch.load(path, weights_only=True)
    assert raw['meta']['iter'] == 4
    restored = CheckpointLoader.load_checkpoint(str(path))
    assert isinstance(restored['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)


def test_legacy_mmengine_checkpoint_loads_and_resumes(tmp_path, monkeypatch):
    # Write with MMEngine's own, unwrapped save_checkpoint.
    monkeypatch.setattr(runner_module, 'save_checkpoint',
                        runner_module.save_checkpoint.__wrapped__)
    runner = _toy_runner(tmp_path / 'legacy', 'toy_legacy', max_iters=2)
    runner.train()
    monkeypatch.undo()
    path = str(tmp_path / 'legacy' / 'iter_2.pth')
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert 'builtins.getattr' in unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)

    ref = torch.load(path, weights_only=False)
    loaded = CheckpointLoader.load_checkpoint(path)
    for key, ref_buf in ref['message_hub']['log_scalars'].items():
        buf = loaded['message_hub']['log_scalars'][key]
        assert type(buf) is HistoryBuffer
        np.testing.assert_array_equal(buf._log_history, ref_buf._log_history)
        np.testing.assert_array_equal(buf._count_history,
                                      ref_buf._count_history)
    assert torch.equal(loaded['state_dict']['linear.weight'],
                       ref['state_dict']['linear.weight'])
    leaked = [
        g for g in torch.serialization.get_safe_globals()
        if sc._LegacyHistoryBuffer in (g if isinstance(g, tuple) else (g, ))
    ]
    assert leaked == [], 'the legacy allow-list must only last one load'

    resumed = _toy_runner(tmp_path / 'resumed', 'toy_resumed', max_iters=4,
                          resume_from=path)
    resumed.train()
    assert resumed.iter == 4
    hub_loss = resumed.message_hub.get_scalar('train/loss')
    # 2 iterations from the legacy checkpoint + 2 after resuming.
    assert len(hub_loss.data[0]) == 4


def test_code_execution_payload_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(sc.TRUST_ENV, raising=False)
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsShell(f'touch {marker}')},
               path)
    with pytest.raises(sc.UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(str(path))
    assert f'{sc.TRUST_ENV}=1' in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()

    monkeypatch.setenv(sc.TRUST_ENV, '1')
    with pytest.warns(UserWarning, match='weights_only=False'):
        CheckpointLoader.load_checkpoint(str(path))
    assert marker.exists(), 'the opt-in must load the trusted file fully'


def test_getattr_stand_in_only_serves_history_buffer(tmp_path, monkeypatch):
    monkeypatch.delenv(sc.TRUST_ENV, raising=False)
    path = tmp_path / 'gadget.pth'
    torch.save({'meta': _GetattrGadget()}, path)
    with pytest.raises(sc.UnsafeCheckpointError, match='fromkeys'):
        sc.safe_load(str(path))


def test_tampered_history_buffer_methods_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(sc.TRUST_ENV, raising=False)
    buf = _history_buffer([1.0], [1])
    # Map 'min' to the 'max' method: not what MMEngine ever writes.
    buf._statistics_methods = {'min': HistoryBuffer.max}
    path = tmp_path / 'tampered.pth'
    torch.save({'message_hub': {'log_scalars': {'x': buf}}}, path)
    with pytest.raises(sc.UnsafeCheckpointError, match='statistics'):
        sc.safe_load(str(path))


@pytest.mark.parametrize('value,expected', [('1', True), ('true', True),
                                            ('0', False), ('', False)])
def test_trust_env_values(monkeypatch, value, expected):
    monkeypatch.setenv(sc.TRUST_ENV, value)
    assert sc.trusted_checkpoints_enabled() is expected


def test_trust_env_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv(sc.TRUST_ENV, 'maybe')
    with pytest.raises(ValueError, match="'maybe'"):
        sc.trusted_checkpoints_enabled()


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        sc.load_from_local(str(tmp_path / 'nope.pth'), map_location='cpu')
