"""End-to-end train -> resume -> test through tools/ and MMDetection's tools,
2-process CPU training with tools/dist_train.sh, and resume state equality.

Everything runs on a tiny synthetic set (4 train / 2 val images of 128 px)
in pytest tmp dirs; one epoch is 2 iterations of batch 2. The GHM kernels run
eagerly (MMDET_GHM_COMPILE=0): torch.compile's warm-up would dominate.
"""
import glob
import importlib.util
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import textwrap

import mmdet
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
MMDET_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
BASE_CONFIG = osp.join(
    REPO, 'configs', 'synthetic',
    'retinanet_tiny-r18_fpn_fl_synthetic-shapes.py')
NUM_TRAIN, NUM_VAL, BATCH = 4, 2, 2
ITERS_PER_EPOCH = NUM_TRAIN // BATCH

sys.path.insert(0, TOOLS)  # the tools import their sibling launch_utils
import launch_utils  # noqa: E402


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'mmdet_ghm_tools_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_tool('train')
test_tool = _load_tool('test')

CONFIG_TEMPLATE = '''
_base_ = {base!r}
model = dict(bbox_head=dict(
    loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                  use_sigmoid=True, loss_weight=1.0),
    loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10,
                   momentum=0.7, loss_weight=10.0)),
    # A few iterations give low scores: keep them so COCO eval has boxes.
    test_cfg=dict(score_thr=0.0))
data_root = {data_root!r}
generator_cfg = dict(seed=0, num_train={num_train}, num_val={num_val})
# No random flip: resumed and uninterrupted runs must see the same data.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=-1))
'''


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    """A tiny-run GHM config on top of the repo's synthetic RetinaNet."""
    root = tmp_path_factory.mktemp('tools')
    path = root / 'tiny_ghm.py'
    path.write_text(
        CONFIG_TEMPLATE.format(
            base=BASE_CONFIG,
            data_root=str(root / 'data') + '/',
            num_train=NUM_TRAIN,
            num_val=NUM_VAL,
            batch=BATCH))
    return str(path)


def _run(args, cwd, env_extra=None, expect_ok=True, timeout=600):
    env = dict(os.environ)
    env.pop('MMDET_GHM_TRUSTED_CHECKPOINT', None)
    env['MMDET_GHM_COMPILE'] = '0'
    env.update(env_extra or {})
    proc = subprocess.run(
        args, cwd=str(cwd), env=env, capture_output=True, text=True,
        timeout=timeout)
    out = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, f'{args} failed:\n{out[-6000:]}'
    return proc.returncode, out


def _load(path):
    """Plain torch.load with weights_only=True: no plugin help needed."""
    return torch.load(path, map_location='cpu', weights_only=True)


def _acc_sums(state_dict):
    return {k: v for k, v in state_dict.items() if k.endswith('acc_sum')}


def _assert_same_tree(a, b, path='ckpt'):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=path)
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{path}: {set(a) ^ set(b)}'
        for key in a:
            _assert_same_tree(a[key], b[key], f'{path}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f'{path}[{i}]')
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6), path
    else:
        assert a == b, path


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def test_train_resume_test_with_our_tools(config, tmp_path):
    train = [sys.executable, osp.join(TOOLS, 'train.py'), config]
    run_dir, ref_dir = tmp_path / 'run', tmp_path / 'ref'

    _run(train + ['--work-dir', str(run_dir), '--cfg-options',
                  'train_cfg.max_epochs=1'], cwd=tmp_path)
    first = run_dir / 'epoch_1.pth'
    assert torch.serialization.get_unsafe_globals_in_checkpoint(first) == []
    assert _load(first)['meta']['iter'] == ITERS_PER_EPOCH

    # A fresh run must not overwrite the earlier run's checkpoints.
    before = first.read_bytes()
    rc, out = _run(train + ['--work-dir', str(run_dir)], cwd=tmp_path,
                   expect_ok=False)
    assert rc != 0 and 'FileExistsError' in out and '--resume' in out
    assert first.read_bytes() == before

    _, out = _run(train + ['--work-dir', str(run_dir), '--resume'],
                  cwd=tmp_path)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in out
    _run(train + ['--work-dir', str(ref_dir)], cwd=tmp_path)

    resumed, straight = (_load(run_dir / 'epoch_2.pth'),
                         _load(ref_dir / 'epoch_2.pth'))
    assert resumed['meta']['iter'] == 2 * ITERS_PER_EPOCH
    # 1 epoch + resume + 1 epoch == 2 epochs in one go: weights, GHM EMA
    # buffers, optimizer moments and scheduler state all carried over.
    acc = _acc_sums(straight['state_dict'])
    assert len(acc) == 2, f'expected GHM-C and GHM-R acc_sum, got {acc}'
    assert all(v.abs().sum() > 0 for v in acc.values())
    _assert_same_tree(straight['state_dict'], resumed['state_dict'])
    _assert_same_tree(straight['optimizer'], resumed['optimizer'])
    _assert_same_tree(straight['param_schedulers'],
                      resumed['param_schedulers'])

    out_pkl = tmp_path / 'test' / 'results.pkl'
    _, out = _run([
        sys.executable, osp.join(TOOLS, 'test.py'), config,
        str(run_dir / 'epoch_2.pth'), '--work-dir', str(tmp_path / 'test'),
        '--out', str(out_pkl), '--show-dir', 'vis'
    ], cwd=tmp_path)
    assert 'coco/bbox_mAP' in out
    with open(out_pkl, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == NUM_VAL
    painted = glob.glob(str(tmp_path / 'test' / '*' / 'vis' / '*.png'))
    assert len(painted) == NUM_VAL, painted


def test_train_resume_test_with_mmdetection_tools(config, tmp_path):
    """MMDetection's own scripts; mmdet_ghm comes in via custom_imports."""
    env = {'PYTHONPATH': REPO + os.pathsep + os.environ.get('PYTHONPATH', '')}
    train = [sys.executable, osp.join(MMDET_TOOLS, 'train.py'), config,
             '--work-dir', str(tmp_path / 'run')]
    _run(train + ['--cfg-options', 'train_cfg.max_epochs=1'], tmp_path, env)
    first = str(tmp_path / 'run' / 'epoch_1.pth')
    _, out = _run(train + ['--resume', first], tmp_path, env)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in out
    last = tmp_path / 'run' / 'epoch_2.pth'
    assert _load(last)['meta']['iter'] == 2 * ITERS_PER_EPOCH
    _, out = _run([
        sys.executable, osp.join(MMDET_TOOLS, 'test.py'), config,
        str(last), '--work-dir', str(tmp_path / 'test')
    ], tmp_path, env)
    assert 'coco/bbox_mAP' in out


def test_dist_train_and_test_with_two_cpu_processes(config, tmp_path):
    work_dir = tmp_path / 'dist'
    env = {'PORT': _free_port(), 'PYTHON': sys.executable,
           'CUDA_VISIBLE_DEVICES': ''}
    _, out = _run([
        'bash', osp.join(TOOLS, 'dist_train.sh'), config, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1'
    ], tmp_path, env)
    assert 'Distributed launcher: pytorch' in out and 'GPU number: 2' in out
    assert "'backend': 'gloo'" in out
    ckpt = _load(work_dir / 'epoch_1.pth')
    # Each of the 2 processes gets half of the images per iteration.
    assert ckpt['meta']['iter'] == ITERS_PER_EPOCH // 2

    out_pkl = tmp_path / 'dist_results.pkl'
    env['PORT'] = _free_port()
    _, out = _run([
        'bash', osp.join(TOOLS, 'dist_test.sh'), config,
        str(work_dir / 'epoch_1.pth'), '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--out', str(out_pkl)
    ], tmp_path, env)
    assert 'coco/bbox_mAP' in out
    with open(out_pkl, 'rb') as f:
        results = pickle.load(f)
    assert sorted(r['img_id'] for r in results) == list(
        range(1, NUM_VAL + 1))


def _live_state(runner):
    model = runner.model.module if hasattr(runner.model, 'module') else \
        runner.model
    return dict(
        acc_sum=_acc_sums(model.state_dict()),
        optimizer=runner.optim_wrapper.state_dict(),
        schedulers=[s.state_dict() for s in runner.param_schedulers],
        loss_log=runner.message_hub.get_scalar('train/loss').data[0].tolist(),
        iter=runner.iter,
        epoch=runner.epoch)


def test_resume_restores_state_at_save_time(config, tmp_path, monkeypatch):
    monkeypatch.setenv('MMDET_GHM_COMPILE', '0')
    cfg = Config.fromfile(config)
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'saved')
    cfg.experiment_name = 'resume_state_saved'
    saver = Runner.from_cfg(cfg)
    saver.train()
    saved = _live_state(saver)
    assert saved['iter'] == ITERS_PER_EPOCH
    assert all(v.abs().sum() > 0 for v in saved['acc_sum'].values())
    assert len(saved['acc_sum']) == 2
    assert len(saved['loss_log']) == ITERS_PER_EPOCH

    cfg = Config.fromfile(config)
    cfg.train_cfg.max_epochs = 1  # nothing left to train after resuming
    cfg.work_dir = str(tmp_path / 'resumed')
    cfg.experiment_name = 'resume_state_resumed'
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'saved' / 'epoch_1.pth')
    resumer = Runner.from_cfg(cfg)
    fresh_acc = _acc_sums(resumer.model.state_dict())
    assert all(v.abs().sum() == 0 for v in fresh_acc.values())
    resumer.train()
    _assert_same_tree(saved, _live_state(resumer), 'state')


def test_cpu_distributed_setup_rejects_slurm_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('only meaningful without CUDA')
    cfg = Config(dict(launcher='slurm'))
    with pytest.raises(ValueError, match='--launcher slurm'):
        launch_utils.setup_cpu_distributed(cfg)
    cfg = Config(dict(launcher='pytorch',
                      env_cfg=dict(dist_cfg=dict(backend='mpi'))))
    with pytest.raises(ValueError, match="'mpi'"):
        launch_utils.setup_cpu_distributed(cfg)
    cfg = Config(dict(launcher='none'))
    launch_utils.setup_cpu_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg


def test_cli_flags_match_mmdetection(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored after the test
    monkeypatch.delenv('LOCAL_RANK')
    args = train_tool.parse_args([
        'cfg.py', '--work-dir', 'w', '--amp', '--auto-scale-lr', '--resume',
        '--launcher', 'pytorch', '--local-rank', '3', '--cfg-options',
        'a.b=1'
    ])
    assert (args.work_dir, args.amp, args.auto_scale_lr, args.resume,
            args.launcher) == ('w', True, True, 'auto', 'pytorch')
    assert args.cfg_options == {'a.b': 1}
    assert os.environ['LOCAL_RANK'] == '3'
    assert train_tool.parse_args(['c.py', '--resume', 'x.pth']).resume == \
        'x.pth'

    args = test_tool.parse_args([
        'cfg.py', 'ckpt.pth', '--out', 'r.pkl', '--show-dir', 'vis',
        '--wait-time', '0.5', '--tta', '--launcher', 'none'
    ])
    assert (args.checkpoint, args.out, args.show_dir, args.wait_time,
            args.tta) == ('ckpt.pth', 'r.pkl', 'vis', 0.5, True)
    with pytest.raises(ValueError, match="'r.json'"):
        test_tool.parse_args(['cfg.py', 'ckpt.pth', '--out', 'r.json'])


def test_train_auto_scale_lr_without_config_entry_raises(tmp_path):
    cfg = tmp_path / 'no_scale.py'
    cfg.write_text("model = dict(type='RetinaNet')\n")
    with pytest.raises(ValueError, match='auto_scale_lr'):
        train_tool.main([str(cfg), '--work-dir', str(tmp_path / 'w'),
                         '--auto-scale-lr'])
