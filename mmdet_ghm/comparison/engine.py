"""Plan and run a loss comparison on one config: the engine of ``tools/compare_losses.py``.

Every loss setting (:mod:`.loss_settings`) x seed is an ordinary MMDetection
training and evaluation of the user's config with that loss swapped in,
trained by the study runner (:mod:`mmdet_ghm.study.runner`): each run in
its own process, resumable (an interrupted run goes on from its last
checkpoint, exactly, with ``RNGStateHook``), locked (two invocations never
train the same run), one record per finished run. Everything the user got
wrong is reported before the first training starts (:func:`prepare`).
"""
import contextlib
import datetime
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from mmdet_ghm.datasets.build_dir import file_sha256
from mmdet_ghm.study.data_sets import relative_paths
from mmdet_ghm.study.records import load_records
from mmdet_ghm.study.runner import GridOptions, Run, StudyError, plan, run_grid
from mmdet_ghm.study.variants import CONFIG_DATA, Variant

from . import loss_settings as ls
from .work_dir import claim, config_digest

#: The losses compared when none are given: the config's own, FL and published GHM.
DEFAULT_SETTINGS = ('own', 'fl', 'ghm')
DEFAULT_SEEDS = (0, 1, 2)
GROUP = 'compare'


class CompareError(ValueError):
    """Bad input, found before any training: one clear message."""


@dataclass
class CompareOptions:
    """What ``tools/compare_losses.py`` was asked (see its ``--help``)."""

    config: str
    losses: Optional[Sequence[str]] = None
    seeds: Sequence[int] = DEFAULT_SEEDS
    work_dir: Optional[str] = None
    cfg_options: Dict = field(default_factory=dict)
    clip: Optional[str] = None
    epochs: Optional[int] = None
    jobs: int = 1
    threads: int = 1
    launcher: str = 'none'
    gpus: int = 1
    stall_timeout: float = 900.0
    status_every: float = 60.0


@dataclass
class Comparison:
    """A checked, planned comparison (the output of :func:`prepare`)."""

    options: CompareOptions
    cfg: object
    kind: ls.HeadKind
    settings: List[str]
    own: Optional[str]
    variants: List[Variant]
    notes: Dict[str, List[str]]
    clip_note: str
    work_dir: str
    config_rel: str
    #: where the runs start (relative paths of the config and its data are from here)
    cwd: str

    @property
    def records_dir(self) -> str:
        return osp.join(self.work_dir, 'records')

    def runs(self) -> List[Run]:
        return plan(self.variants, list(self.options.seeds), self.records_dir)


def default_work_dir(config: str) -> str:
    """``work_dirs/compare_losses/<config name>`` (MMDetection names work dirs so)."""
    return osp.join('work_dirs', 'compare_losses', osp.splitext(osp.basename(config))[0])


def load_config(path: str, cfg_options: Dict):
    """The config with ``cfg_options`` merged and its ``custom_imports`` imported."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise CompareError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def check_evaluation(cfg, path: str) -> None:
    """A comparison needs a val set and an evaluator: say which is missing."""
    missing = [key for key in ('val_dataloader', 'val_evaluator', 'val_cfg') if not cfg.get(key)]
    if missing:
        raise CompareError(f'{path} has no {", ".join(missing)}: a comparison evaluates every '
                           'run on a val set; add a val_dataloader, val_evaluator and val_cfg '
                           '(as MMDetection\'s configs have)')
    loop = (cfg.get('train_cfg') or {}).get('type', 'EpochBasedTrainLoop')
    if loop != 'EpochBasedTrainLoop':
        raise CompareError(f'{path}: train_cfg.type is {loop!r}; a comparison records its '
                           'curves per epoch and trains EpochBasedTrainLoop configs only')


def choose_settings(requested: Optional[Sequence[str]], kind: ls.HeadKind,
                    own: Optional[str]) -> List[str]:
    """The settings to train, in report order.

    Default: the config's own loss, FL and published GHM, those that apply to
    the head, without the named setting the config's loss already is.
    """
    if requested:
        if len(set(requested)) != len(requested):
            raise CompareError(f'--losses repeats a loss: {list(requested)}')
        try:
            ls.check_settings(kind, requested)
        except ls.UnsupportedConfig as error:
            raise CompareError(str(error)) from None
        return [s for s in ls.SETTINGS if s in requested]
    return [s for s in DEFAULT_SETTINGS if s in kind.settings and s != own]


def prepare(options: CompareOptions, cwd: Optional[str] = None) -> Comparison:
    """Check everything and plan the runs; nothing is trained or written but ``comparison.json``.

    Raises:
        CompareError: a bad config, loss, seed or work dir (the message says which).
    """
    cwd = cwd or os.getcwd()
    if not options.seeds or len(set(options.seeds)) != len(options.seeds) or \
            any(s < 0 for s in options.seeds):
        raise CompareError(f'--seeds must be distinct integers >= 0, got {list(options.seeds)}')
    for name in ('jobs', 'threads', 'gpus'):
        if getattr(options, name) < 1:
            raise CompareError(f'--{name} must be >= 1, got {getattr(options, name)}')
    if options.launcher not in ('none', 'pytorch'):
        raise CompareError(f'--launcher must be none or pytorch, got {options.launcher!r}')
    if options.launcher != 'none' and options.jobs != 1:
        raise CompareError(f'--jobs {options.jobs} with --launcher {options.launcher}: '
                           'distributed runs train one after another, each over --gpus GPUs')
    if options.epochs is not None and options.epochs < 1:
        raise CompareError(f'--epochs must be >= 1, got {options.epochs}')
    cfg = load_config(options.config, options.cfg_options)
    check_evaluation(cfg, options.config)
    try:
        kind = ls.head_kind(cfg)
    except ls.UnsupportedConfig as error:
        raise CompareError(f'{options.config}: {error}') from None
    own = ls.own_setting(cfg, kind)
    settings = choose_settings(options.losses, kind, own)
    try:
        clip, clip_note = ls.clip_overrides(cfg, options.clip)
    except ValueError as error:
        raise CompareError(str(error)) from None
    config_abs = osp.abspath(options.config)
    config_rel = (osp.relpath(config_abs, cwd) if config_abs.startswith(cwd.rstrip(os.sep) + os.sep)
                  else config_abs)
    variants, notes = [], {}
    for setting in settings:
        overrides, notes[setting] = ls.swap(cfg, setting, kind)
        label = ls.DESCRIPTIONS[setting]
        if setting == 'own':
            own_loss = ls.config_value(cfg, f'{kind.head_key}.loss_cls').get('type')
            label = f"the config's own: {own_loss}"
        variants.append(Variant(setting, label, config_rel,
                                dict(options.cfg_options, **clip, **overrides),
                                group=GROUP, dataset=CONFIG_DATA))
    work_dir = osp.abspath(options.work_dir or default_work_dir(options.config))
    claim(work_dir, dict(config=config_rel, config_sha256=config_digest(cfg),
                         cfg_options=relative_paths(options.cfg_options, cwd), clip=clip_note,
                         created=datetime.datetime.now().isoformat(timespec='seconds')))
    return Comparison(options, cfg, kind, settings, own, variants, notes, clip_note, work_dir,
                      config_rel, cwd)


@contextlib.contextmanager
def in_dir(path: str) -> Iterator[None]:
    """Work in ``path`` for a while: a config's relative data paths are the runs' (MMDetection's
    way), so whatever reads the data from this process reads it from there."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def dataset_cfg(cfg, split: str) -> Dict:
    """The ``<split>_dataloader``'s dataset, inside its wrappers (``RepeatDataset``, ...)."""
    dataset = cfg.get(f'{split}_dataloader', {}).get('dataset', {})
    while 'dataset' in dataset and 'ann_file' not in dataset:
        dataset = dataset['dataset']
    return dataset


def config_data_root(cfg, cwd: str) -> Optional[str]:
    """The train set's ``data_root``, absolute with a trailing slash (None without one)."""
    root = dataset_cfg(cfg, 'train').get('data_root')
    return osp.join(osp.abspath(osp.join(cwd, root)), '') if root else None


def describe_config_data(cfg, cwd: str) -> Dict:
    """A record's ``data`` for the config's own data: its id and the annotation hashes.

    The id is the last component of the train set's ``data_root`` (MMDetection's
    ``data/coco/`` -> ``coco``); files are named relative to the data root.
    """
    hashes, params = {}, {}
    root_id = None
    for split in ('train', 'val'):
        dataset = dataset_cfg(cfg, split)
        root = dataset.get('data_root') or ''
        if root and root_id is None:
            root_id = osp.basename(osp.normpath(root))
        for key in ('generator_cfg', 'converter_cfg'):
            if dataset.get(key):
                params = dict(dataset[key])
        ann = dataset.get('ann_file')
        if ann:
            path = ann if osp.isabs(ann) else osp.join(root, ann)
            path = path if osp.isabs(path) else osp.join(cwd, path)
            if osp.isfile(path):
                hashes[relative_paths(ann, osp.join(cwd, root) if root else cwd)] = \
                    file_sha256(path)
    return dict(id=root_id or 'unknown', params=params, stats=None, annotations_sha256=hashes)


def build_data(cfg, echo=print) -> None:
    """Build the train and val sets once, before any run: a set that generates itself on
    first use is made here (not by several runs at once), and a broken one fails here.

    Raises:
        CompareError: a data set cannot be built (missing files, bad annotations).
    """
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import mmdet_ghm  # noqa: F401  (registers this package's datasets)
    for split in ('train', 'val'):
        echo(f'checking the {split} set ...')
        try:
            dataset = DATASETS.build(cfg[f'{split}_dataloader']['dataset'])
        except (FileNotFoundError, OSError, ValueError, KeyError, AssertionError) as error:
            raise CompareError(f'cannot build the {split} set of the config: '
                               f'{type(error).__name__}: {error}') from None
        if len(dataset) == 0:
            raise CompareError(f'the {split} set of the config is empty')


def code_root() -> str:
    """The checkout (or install folder) of mmdet_ghm, whose commit the records give."""
    import mmdet_ghm
    return osp.dirname(osp.dirname(osp.abspath(mmdet_ghm.__file__)))


def distributed_command(gpus: int) -> Callable[[str], List[str]]:
    """The command that trains one run over ``gpus`` GPUs with torchrun (as dist_train.sh)."""
    def command(spec_path: str) -> List[str]:
        port = os.environ.get('PORT', '29500')
        return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
                f'--master_port={port}', '-m', 'mmdet_ghm.study.child', spec_path]
    return command


def run(comparison: Comparison, echo=print,
        command: Optional[Callable[[str], List[str]]] = None) -> List[Run]:
    """Train every run of the comparison that has no record; return the failed ones.

    ``command``: how to start the training of one run from its spec file
    (default: the study's child, or torchrun over ``--gpus`` with ``--launcher pytorch``).

    Raises:
        CompareError: a data set cannot be built.
    """
    options = comparison.options
    cwd = comparison.cwd
    runs = comparison.runs()
    if any(not r.done for r in runs):
        with in_dir(cwd):
            build_data(comparison.cfg, echo)
    grid = GridOptions(
        root=cwd, work_dir=osp.join(comparison.work_dir, 'runs'), jobs=options.jobs,
        threads=options.threads, epochs=options.epochs, stall_timeout=options.stall_timeout,
        status_every=options.status_every, code_root=code_root(),
        config_data=describe_config_data(comparison.cfg, cwd),
        config_data_root=config_data_root(comparison.cfg, cwd), launcher=options.launcher,
        label='compare')
    if command is not None:
        grid.command = command
    elif options.launcher == 'pytorch':
        grid.command = distributed_command(options.gpus)
    try:
        return run_grid(runs, grid, echo)
    except StudyError as error:
        raise CompareError(str(error)) from None


def records(comparison: Comparison) -> List[dict]:
    """The records of this comparison's settings and seeds (others in the folder are left out)."""
    wanted = {(v.name, s) for v in comparison.variants for s in comparison.options.seeds}
    return [r for r in load_records(comparison.records_dir) if (r['variant'], r['seed']) in wanted]

