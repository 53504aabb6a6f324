"""mmdet-ghm: Gradient Harmonizing Mechanism losses for MMDetection 3.x.

Like MMDetection, the package carries its configs, tools and model index
under ``mmdet_ghm/.mim`` (where MIM and ``mmdet_ghm.config_path`` look):
a wheel gets copies, made in the build directory (never in the source
tree); an editable install gets symbolic links in the source tree to the
repository's own ``configs/``, ``tools/`` and ``model-index.yml``, so edits
show at once. ``mmdet_ghm/.mim`` is ignored by git.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
IGNORED = shutil.ignore_patterns('__pycache__', '*.pyc')


def link_mim_files(mim_dir):
    """Point ``mim_dir/<name>`` at the repository's files (editable installs)."""
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        target = osp.join(mim_dir, name)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        os.symlink(osp.relpath(osp.join(ROOT, name), mim_dir), target)


def copy_mim_files(mim_dir):
    """Copy the repository's files into ``mim_dir`` (wheels, sdist builds)."""
    if osp.lexists(mim_dir):
        shutil.rmtree(mim_dir)
    os.makedirs(mim_dir)
    for name in MIM_FILES:
        source = osp.join(ROOT, name)
        if osp.isdir(source):
            shutil.copytree(source, osp.join(mim_dir, name), ignore=IGNORED)
        else:
            shutil.copyfile(source, osp.join(mim_dir, name))


class BuildPyWithMim(build_py):
    """``build_py`` that also provides ``mmdet_ghm/.mim``."""

    def run(self):
        super().run()
        if self.editable_mode:
            link_mim_files(osp.join(ROOT, 'mmdet_ghm', '.mim'))
        else:
            copy_mim_files(osp.join(self.build_lib, 'mmdet_ghm', '.mim'))


if 'develop' in sys.argv:  # legacy `setup.py develop` runs no build_py
    link_mim_files(osp.join(ROOT, 'mmdet_ghm', '.mim'))

with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmdet-ghm',
    version='0.1.0',
    description='Exact, sync-free GHM-C / GHM-R losses (Li, Liu & Wang, '
    'AAAI 2019) as an MMDetection 3.x plugin',
    long_description=long_description,
    long_description_content_type='text/markdown',
    # torch 2.0 supports Python 3.8-3.11, MMDetection 3.3 Python >= 3.7.
    python_requires='>=3.8',
    packages=find_packages(include=['mmdet_ghm', 'mmdet_ghm.*']),
    include_package_data=False,
    cmdclass={'build_py': BuildPyWithMim},
    # torch and mmcv are not pinned: users bring the build that fits their
    # hardware (see README). tools/install.sh pins the CPU stack used in CI.
    # numpy is not capped: MMDetection 3.3, mmcv 2.1, MMEngine 0.10.7 and
    # pycocotools 2.0.11 train and evaluate with numpy 2.4 here (torch 2.13);
    # torch < 2.3 itself needs numpy < 2 (README).
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.0.0,<3.4.0',
        'pycocotools',
        'numpy',
        'matplotlib',
    ],
    extras_require={'tests': ['pytest']},
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
