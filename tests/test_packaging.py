"""The package as a user installs it: a wheel that carries its configs and tools.

One virtual environment per test session (``--system-site-packages``, so it
reuses the installed torch / mmcv / mmdet) gets mmdet-ghm from an sdist of a
copy of this clone, built like ``pip install .`` builds it (no editable
install, no symlinks). Everything then runs from a directory outside the
clone: the wheel's ``mmdet_ghm/.mim`` holds ``configs/``, ``tools/`` and
``model-index.yml``; a COCO and a synthetic config load and build from there;
a user's config inherits an installed config through ``mmdet_ghm.config_path``
and trains for one iteration with the installed ``tools/train.py`` and with
MMDetection's own. About a minute on the project's 2-core CPU machine.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml
from mmengine.config import Config

import mmdet
import mmdet_ghm
from mmdet_ghm.utils import mim

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
COPY_IGNORE = shutil.ignore_patterns('.git', 'build', 'dist', '*.egg-info', 'work_dirs', 'data',
                                     '.mim', '__pycache__', '*.pyc', '.pytest_cache')
GHM_COCO = 'ghm/retinanet_r50_fpn_ghm-1x_coco.py'
GHM_SYNTHETIC = 'synthetic/retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'

# A user's config: inherits the installed synthetic GHM config, shrinks it to
# one iteration on 2 images. Nothing imports mmdet_ghm before MMEngine parses it.
USER_CONFIG = '''
_base_ = __import__('mmdet_ghm').config_path({base!r})
model = dict(bbox_head=dict(loss_cls=dict(bins=20)))
data_root = {data_root!r}
generator_cfg = dict(seed=0, num_train=2, num_val=2)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=10)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=10))
custom_hooks = []
'''

# Runs in the venv, from outside the clone; prints one JSON line.
INSPECT = '''
import json, os, os.path as osp, sys
import mmdet_ghm
from mmengine.config import Config
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
out = dict(file=mmdet_ghm.__file__, mim_dir=mmdet_ghm.utils.mim.mim_dir())
mim_dir = out['mim_dir']
out['links'] = [osp.join(p, name) for p, dirs, files in os.walk(mim_dir)
                for name in dirs + files if osp.islink(osp.join(p, name))]
coco = Config.fromfile(mmdet_ghm.config_path({coco!r}))
coco.model.backbone.init_cfg = None
detector = MODELS.build(coco.model)
out['coco'] = dict(loss_cls=type(detector.bbox_head.loss_cls).__module__ + '.' +
                   type(detector.bbox_head.loss_cls).__name__,
                   bins=detector.bbox_head.loss_cls.bins,
                   mu=detector.bbox_head.loss_bbox.mu,
                   clip=coco.optim_wrapper.clip_grad.to_dict())
user = Config.fromfile(sys.argv[1])
detector = MODELS.build(user.model)
out['user'] = dict(loss_cls=type(detector.bbox_head.loss_cls).__name__,
                   bins=detector.bbox_head.loss_cls.bins,
                   momentum=detector.bbox_head.loss_cls.momentum,
                   loss_bbox=type(detector.bbox_head.loss_bbox).__name__,
                   dataset=user.train_dataloader.dataset.type,
                   base=user.filename)
print(json.dumps(out))
'''


def _run(args, cwd, timeout=300):
    env = dict(os.environ, MMDET_GHM_COMPILE='0', PYTHONNOUSERSITE='1')
    env.pop('PYTHONPATH', None)
    proc = subprocess.run(args, cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{args} failed:\n{(proc.stdout + proc.stderr)[-6000:]}'
    return proc.stdout


@pytest.fixture(scope='session')
def installed(tmp_path_factory):
    """A venv holding a non-editable mmdet-ghm built from an sdist of this clone."""
    root = tmp_path_factory.mktemp('packaging')
    src, dist, venv = root / 'src', root / 'dist', root / 'venv'
    shutil.copytree(REPO, src, ignore=COPY_IGNORE, symlinks=True)
    _run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(dist)], cwd=src)
    (sdist,) = dist.glob('mmdet_ghm-*.tar.gz')
    _run([sys.executable, '-m', 'venv', '--system-site-packages', str(venv)], cwd=root)
    python = str(venv / 'bin' / 'python')
    _run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
          '--no-index', '--disable-pip-version-check', str(sdist)], cwd=root)
    work = root / 'work'  # outside the clone and the venv
    work.mkdir()
    site = _run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                cwd=work).strip()
    return dict(python=python, work=work, package=osp.join(site, 'mmdet_ghm'))


@pytest.fixture(scope='session')
def user_config(installed):
    path = installed['work'] / 'my_ghm.py'
    path.write_text(USER_CONFIG.format(base=GHM_SYNTHETIC,
                                       data_root=str(installed['work'] / 'data') + '/'))
    return str(path)


@pytest.fixture(scope='session')
def inspected(installed, user_config):
    code = INSPECT.format(coco=GHM_COCO)
    return json.loads(_run([installed['python'], '-c', code, user_config],
                           cwd=installed['work']).splitlines()[-1])


def _files(root):
    return sorted(osp.relpath(osp.join(p, f), root) for p, dirs, files in os.walk(root)
                  for f in files if '__pycache__' not in p)


def test_wheel_carries_configs_tools_and_model_index(installed, inspected):
    package = installed['package']
    assert osp.realpath(inspected['file']) == osp.join(osp.realpath(package), '__init__.py')
    assert osp.realpath(inspected['mim_dir']) == osp.realpath(osp.join(package, '.mim'))
    assert inspected['links'] == []  # copies, not links into the clone
    mim_dir = osp.join(package, '.mim')
    for name in ('configs', 'tools'):
        assert _files(osp.join(mim_dir, name)) == _files(osp.join(REPO, name)), name
    for name in ('model-index.yml', 'configs/ghm/metafile.yml', 'tools/train.py',
                 'configs/' + GHM_COCO):
        with open(osp.join(mim_dir, name), 'rb') as a, open(osp.join(REPO, name), 'rb') as b:
            assert a.read() == b.read(), name
    assert os.access(osp.join(mim_dir, 'tools', 'dist_train.sh'), os.X_OK)


def test_model_index_points_at_shipped_configs(installed):
    """What ``mim search mmdet_ghm`` and MMEngine's metafile lookup read."""
    mim_dir = osp.join(installed['package'], '.mim')
    with open(osp.join(mim_dir, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    configs = []
    for metafile in imports:
        with open(osp.join(mim_dir, metafile)) as f:
            meta = yaml.safe_load(f)
        configs += [model['Config'] for model in meta['Models']]
        for collection in meta['Collections']:
            assert osp.isfile(osp.join(mim_dir, collection['README']))
    ghm_configs = ['configs/ghm/' + name for name in os.listdir(osp.join(REPO, 'configs', 'ghm'))
                   if name.endswith('.py')]
    assert sorted(configs) == sorted(ghm_configs)
    for config in configs:
        assert osp.isfile(osp.join(mim_dir, config)), config


def test_installed_coco_config_builds(inspected):
    coco = inspected['coco']
    assert coco['loss_cls'] == 'mmdet_ghm.losses.ghm_c.GHMCLoss'
    assert (coco['bins'], coco['mu']) == (30, 0.02)
    assert coco['clip'] == dict(max_norm=35, norm_type=2)


def test_user_config_inherits_installed_config(inspected, user_config):
    user = inspected['user']
    assert user['base'] == user_config
    assert (user['loss_cls'], user['bins'], user['momentum']) == ('GHMCLoss', 20, 0.75)
    assert user['loss_bbox'] == 'GHMRLoss'
    assert user['dataset'] == 'SyntheticShapesDataset'


@pytest.mark.parametrize('tool', ['installed', 'mmdetection'])
def test_train_from_installed_config(installed, user_config, tool):
    """One iteration with the wheel's tools/train.py and with MMDetection's."""
    script = (osp.join(installed['package'], '.mim', 'tools', 'train.py')
              if tool == 'installed' else MMDET_TRAIN)
    work_dir = installed['work'] / f'run_{tool}'
    _run([installed['python'], script, user_config, '--work-dir', str(work_dir)],
         cwd=installed['work'])
    assert (work_dir / 'epoch_1.pth').is_file()
    dumped = (work_dir / 'my_ghm.py').read_text()
    assert "type='GHMCLoss'" in dumped and 'bins=20' in dumped


def test_installed_test_tool_starts(installed):
    """The wheel's test.py parses its arguments (its train.py runs above)."""
    script = osp.join(installed['package'], '.mim', 'tools', 'test.py')
    out = _run([installed['python'], script, '--help'], cwd=installed['work'])
    assert '--show-dir' in out and '--tta' in out


def test_config_path_in_this_checkout():
    """Editable install or plain clone: the helper finds this clone's configs."""
    assert osp.realpath(mmdet_ghm.config_dir()) == osp.join(osp.realpath(REPO), 'configs')
    path = mmdet_ghm.config_path(GHM_COCO)
    assert osp.realpath(path) == osp.join(osp.realpath(REPO), 'configs', GHM_COCO)


@pytest.mark.parametrize('name, error, match', [
    ('ghm/no_such_config.py', FileNotFoundError, 'no_such_config'),
    ('/etc/passwd', ValueError, '/etc/passwd'),
    ('../setup.py', ValueError, r'\.\./setup\.py'),
    (3, TypeError, 'int'),
])
def test_config_path_rejects(name, error, match):
    with pytest.raises(error, match=match):
        mim.config_path(name)


def test_config_inheritance_merges_overrides(tmp_path):
    """The documented ``_base_`` line, from this checkout: base values kept, overrides win."""
    config = tmp_path / 'user.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = __import__('mmdet_ghm').config_path({GHM_COCO!r})
        model = dict(bbox_head=dict(loss_bbox=dict(mu=0.05)))
    '''))
    head = Config.fromfile(str(config)).model.bbox_head
    assert (head.loss_cls.type, head.loss_cls.bins) == ('GHMCLoss', 30)
    assert (head.loss_bbox.type, head.loss_bbox.mu, head.loss_bbox.bins) == ('GHMRLoss', 0.05, 10)
