"""What the study's analysis records share: where they are, which run they read, who made them.

The records of ``tools/analysis_tools/*_records.py`` (gradient split, anchor
coverage, detection errors) live under ``docs/results/analysis/<kind>/`` as one
JSON file each, name a trained study run (its record and final checkpoint) or a
set-up, and say which commit, machine and tool measured them.
"""
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, Iterable, Iterator, List, Tuple

#: Where the study's records are, relative to the repository.
RESULTS = 'docs/results'


def load_analysis_records(results_dir: str, subdir: str) -> Dict[str, dict]:
    """``{record name (file stem): record}`` of every record in ``results_dir/subdir``."""
    records = {}
    for path in sorted(glob.glob(osp.join(results_dir, subdir, '*.json'))):
        with open(path) as f:
            records[osp.splitext(osp.basename(path))[0]] = json.load(f)
    return records


def final_checkpoint(work_dir: str, variant: str, seed: int, epochs: int) -> Tuple[dict, str]:
    """``(spec, checkpoint)`` of a study run's final epoch in the study's ``work_dir``.

    The newest attempt in ``<work_dir>/<variant>/seed<seed>/`` whose MMEngine
    ``last_checkpoint`` is ``epoch_<epochs>.pth`` (the run finished there);
    ``spec`` is that attempt's ``spec.json`` (config and overrides as trained).
    """
    parent = osp.join(work_dir, variant, f'seed{seed}')
    attempts = sorted(os.listdir(parent), reverse=True) if osp.isdir(parent) else []
    for name in attempts:
        attempt = osp.join(parent, name)
        try:
            with open(osp.join(attempt, 'spec.json')) as f:
                spec = json.load(f)
            with open(osp.join(attempt, 'last_checkpoint')) as f:
                checkpoint = osp.join(attempt, osp.basename(f.read().strip()))
        except (OSError, ValueError):
            continue
        match = re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(checkpoint))
        if (spec.get('variant', {}).get('name') == variant and spec.get('seed') == seed
                and match and int(match.group(1)) == epochs and osp.isfile(checkpoint)):
            return spec, checkpoint
    raise FileNotFoundError(
        f'{variant} seed {seed}: no attempt in {parent} whose last checkpoint is '
        f'epoch_{epochs}.pth (the checkpoints stay on the machine that trained the run)')


def run_fields(spec: dict, record: str, epochs: int) -> dict:
    """The fields of a record that say which run it measured: ``cfg_options`` (the run's
    portable overrides), ``checkpoint`` (its final one, its record) and ``config``."""
    return dict(cfg_options=spec['record_overrides'],
                checkpoint=dict(epoch=epochs, note='the final checkpoint of that run '
                                '(checkpoints are not committed)', record=record,
                                seed=spec['seed'], variant=spec['variant']['name']),
                config=spec['config_rel'])


def provenance(code: dict, env: dict, tool: str) -> dict:
    """The ``provenance`` of a record: commit, whether the tree was dirty, date, machine, tool
    (``code``: :func:`~mmdet_ghm.study.records.code_state`, ``env``: ``environment``)."""
    machine = env['machine']
    return dict(code_commit=code['commit'], code_dirty=code['dirty'], date=env['date'][:10],
                machine=f'{machine["cpu"]}, {machine["cores"]} cores, CPU', tool=tool)


def trained_runs(repo: str, results: str, variants: Iterable[str], seeds: Iterable[int],
                 work_dir: str) -> Iterator[Tuple[str, int, str, int, dict, str]]:
    """``(variant, seed, record, epochs, spec, checkpoint)`` of each study run, its record
    (relative to ``repo``) and its final checkpoint in the study's ``work_dir``.

    Raises:
        FileNotFoundError: a run without a committed record, or whose final
            checkpoint is not in ``work_dir`` (the message names which).
    """
    seeds = list(seeds)
    for variant in variants:
        for seed in seeds:
            record = osp.join(results, 'runs', variant, f'seed{seed}.json')
            if not osp.isfile(osp.join(repo, record)):
                raise FileNotFoundError(f'{variant} seed {seed}: no record {record}; train it '
                                        'first (tools/study.py)')
            with open(osp.join(repo, record)) as f:
                epochs = json.load(f)['epochs']
            spec, checkpoint = final_checkpoint(work_dir, variant, seed, epochs)
            yield variant, seed, record, epochs, spec, checkpoint


def pending_measurements(repo: str, results: str, subdir: str, args, echo=print
                         ) -> List[Tuple[Tuple[str, int, str, int, dict, str], str, str]]:
    """``[(run, split, out)]`` a records tool still has to measure: each of
    :func:`trained_runs` (``run``) on each of ``args.splits``, and the record file it
    writes, ``<repo>/<results>/<subdir>/<variant>-seed<k>-<split>.json``. An existing
    record is left out (``echo`` says so) unless ``args.overwrite``; every run's
    record and checkpoint are found before any is measured (FileNotFoundError names
    the first missing). ``args``: :func:`add_run_arguments`' options and ``overwrite``."""
    pending = []
    for run in trained_runs(repo, results, args.variants, args.seeds,
                            osp.abspath(args.work_dir)):
        variant, seed = run[:2]
        for split in args.splits:
            out = osp.join(repo, results, subdir, f'{variant}-seed{seed}-{split}.json')
            if osp.exists(out) and not args.overwrite:
                echo(f'{osp.relpath(out, repo)} exists (--overwrite replaces it)')
                continue
            pending.append((run, split, out))
    return pending


def add_run_arguments(parser) -> None:
    """The options of a records tool that reads trained study runs: ``--variants``,
    ``--seeds``, ``--work-dir`` (where their checkpoints are) and ``--splits``."""
    parser.add_argument('--variants', nargs='+', required=True, help='study variants')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], help='seeds (default: 0)')
    parser.add_argument('--work-dir', default='work_dirs/study',
                        help='the study\'s work directory, where the runs\' checkpoints are '
                        '(default: work_dirs/study)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        choices=['train', 'val'], help='data splits (default: train val)')
