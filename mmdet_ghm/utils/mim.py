"""Where the installed package keeps its configs and tools.

A wheel carries ``configs/``, ``tools/`` and ``model-index.yml`` under
``mmdet_ghm/.mim`` (as MMDetection does; an editable install links them
there). A user's config inherits one of ours with::

    _base_ = __import__('mmdet_ghm').config_path('ghm/retinanet_r50_fpn_ghm-1x_coco.py')

MMEngine evaluates the ``_base_`` expression on its own, before anything
else in the file runs, so the import has to sit inside the expression.
"""
import os.path as osp

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def mim_dir() -> str:
    """Return the directory holding ``configs/``, ``tools/`` and ``model-index.yml``.

    That is ``mmdet_ghm/.mim`` of an installed package, or the repository root
    when the package is imported from a clone that was never installed.

    Raises:
        FileNotFoundError: If neither exists.
    """
    installed = osp.join(_PACKAGE_DIR, '.mim')
    if osp.isdir(osp.join(installed, 'configs')):
        return installed
    clone = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(clone, 'setup.py')) and osp.isdir(osp.join(clone, 'configs')):
        return clone
    raise FileNotFoundError(
        f'mmdet_ghm at {_PACKAGE_DIR} has no .mim/configs and is not inside a clone of '
        'mmdet-ghm; reinstall it with `pip install .` (or `pip install -e .` in a clone)')


def config_dir() -> str:
    """Return the absolute path of mmdet-ghm's ``configs/`` directory."""
    return osp.join(mim_dir(), 'configs')


def config_path(name: str) -> str:
    """Return the absolute path of one of mmdet-ghm's configs.

    Args:
        name (str): Path relative to ``configs/``, e.g.
            ``'ghm/retinanet_r50_fpn_ghm-1x_coco.py'``.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is absolute or leaves ``configs/``.
        FileNotFoundError: If there is no such config.
    """
    if not isinstance(name, str):
        raise TypeError(f'config name must be a str, got {type(name).__name__}: {name!r}')
    if osp.isabs(name) or osp.normpath(name).split(osp.sep)[0] == '..':
        raise ValueError(f"config name must be relative to mmdet-ghm's configs/, got {name!r}")
    root = config_dir()
    path = osp.join(root, name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmdet-ghm has no config {name!r} (looked for {path})')
    return path
