#!/usr/bin/env python3
"""Run the study: named variants (data set x recipe x loss) x seeds, resumable, aggregated.

Every finished run writes ``docs/results/runs/<variant>/seed<k>.json``; a run
whose record exists is skipped, so the study can be run in batches (and
extended later, elsewhere). After the runs, the records are aggregated into
``docs/results/study.json``, ``study.md`` and ``study_curves.png`` (mAP over
epochs, mean ± std band), and the result blocks of README.md and
docs/study.md are regenerated.

Usage::

    python3 tools/study.py --list
    python3 tools/study.py --variants ce fl ghm ghm-ref --seeds 0 1 2
    python3 tools/study.py --aggregate                  # records -> json, md, png, pages
    python3 tools/study.py --migrate                    # old records -> no absolute paths
    python3 tools/study.py --quick --variants fl --seeds 0 --records /tmp/r --work-dir /tmp/w
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

RESULTS = 'docs/results'
#: Markdown pages with generated study blocks (``<!-- study:GROUP:begin/end -->``).
PAGES = ('README.md', 'docs/study.md')


def parse_args(argv=None):
    from mmdet_ghm.study.variants import VARIANTS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--variants', nargs='+', default=[],
                        help=f'variants to run, any of: {" ".join(VARIANTS)}')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='seeds of every variant (default: 0 1 2)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs at the same time (default: 2, one per core here)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run')
    parser.add_argument('--records', default=osp.join(RESULTS, 'runs'),
                        help='record directory (default: docs/results/runs)')
    parser.add_argument('--work-dir', default='work_dirs/study',
                        help='MMEngine work dirs of the runs (default: work_dirs/study)')
    parser.add_argument('--data-dir', default=None, help='directory of the data sets, each '
                        'in <data-dir>/<set id>/ (default: the repository\'s data/)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: tiny data set, 1 epoch')
    parser.add_argument('--stall-timeout', type=float, default=900,
                        help='kill a run that writes no progress for this many seconds')
    parser.add_argument('--aggregate', action='store_true',
                        help='only aggregate the existing records')
    parser.add_argument('--pages', nargs='+', default=None,
                        help='Markdown pages whose study blocks to regenerate (default: '
                        f'{" ".join(PAGES)} when --records is the default)')
    parser.add_argument('--list', action='store_true', help='list the variants and exit')
    parser.add_argument('--migrate', action='store_true',
                        help='rewrite schema-1 records (and reproductions) without the '
                        'absolute paths they kept, then aggregate')
    parser.add_argument('--reproduce', nargs=2, metavar=('VARIANT', 'SEED'), default=None,
                        help='train one recorded run again (record under '
                        'docs/results/reproductions/) and compare its mAP with the record '
                        'and with the spread over seeds of its variant')
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown variant(s) {unknown}; choose from {" ".join(VARIANTS)}')
    if len(set(args.variants)) != len(args.variants) or len(set(args.seeds)) != len(args.seeds):
        parser.error('--variants and --seeds must not repeat')
    if args.jobs < 1 or args.threads < 1:
        parser.error(f'--jobs and --threads must be >= 1, got {args.jobs}, {args.threads}')
    if any(s < 0 for s in args.seeds):
        parser.error(f'--seeds must be >= 0, got {args.seeds}')
    if args.reproduce:
        if args.reproduce[0] not in VARIANTS or not args.reproduce[1].isdigit():
            parser.error(f'--reproduce takes a known variant and a seed, got {args.reproduce}')
        if args.variants:
            parser.error('--reproduce runs one recorded run; give no --variants')
    if not (args.variants or args.aggregate or args.list or args.reproduce or args.migrate):
        parser.error('give --variants, --aggregate, --reproduce, --migrate or --list')
    return args


def write_outputs(records_dir: str, pages=()) -> dict:
    """Aggregate the records into study.json / study.md / study_curves.png (+ ``pages``)."""
    from mmdet_ghm.study.aggregate import (GROUPS, aggregate, plot_study, render_table,
                                           update_study_blocks)
    from mmdet_ghm.study.coverage import load_coverage_records
    from mmdet_ghm.study.detection_errors import load_detection_errors
    from mmdet_ghm.study.mechanism import load_gradient_splits
    from mmdet_ghm.study.records import load_records, write_json_atomic
    study = aggregate(load_records(records_dir))
    out = osp.dirname(osp.abspath(records_dir.rstrip('/')))
    analysis = load_gradient_splits(out)
    coverage = load_coverage_records(out)
    errors = load_detection_errors(out)
    write_json_atomic(osp.join(out, 'study.json'), study)
    with open(osp.join(out, 'study.md'), 'w') as f:
        f.write('# The loss study, every variant group (generated by tools/study.py '
                '--aggregate)\n\n')
        for group in GROUPS:
            f.write(f'## {group}\n\n{render_table(study, group, ".")}\n\n')
    plot_study(study, osp.join(out, 'study_curves.png'))
    for page in pages:
        with open(page) as f:
            text = f.read()
        # the tables link the records relative to the page
        results = osp.relpath(out, osp.dirname(osp.abspath(page))).replace(os.sep, '/')
        with open(page, 'w') as f:
            f.write(update_study_blocks(text, study, results, analysis, coverage, errors))
    print(f'wrote {out}/study.json, study.md, study_curves.png' +
          (f' and the study blocks of {", ".join(pages)}' if pages else ''))
    return study


def migrate(records: str, data_dir: str) -> None:
    """Rewrite every schema-1 record under ``records`` (and its reproductions) portably."""
    from mmdet_ghm.study.records import migrate_record, write_json_atomic
    changed = 0
    for folder in (records, osp.join(osp.dirname(records.rstrip('/')), 'reproductions')):
        for dirpath, _, names in sorted(os.walk(folder)):
            for name in sorted(n for n in names if n.endswith('.json')):
                path = osp.join(dirpath, name)
                with open(path) as f:
                    record = json.load(f)
                new = migrate_record(record, data_dir)
                if new is not record:
                    write_json_atomic(path, new)
                    changed += 1
    print(f'migrated {changed} record(s) to schema 2')


def reproduce(variant: str, seed: int, records: str, options) -> int:
    """Train a recorded run again and compare; 0 when within the variant's spread."""
    from mmdet_ghm.study.aggregate import mean_std
    from mmdet_ghm.study.records import load_records, read_record, record_path
    from mmdet_ghm.study.runner import plan, run_grid
    from mmdet_ghm.study.variants import VARIANTS
    import dataclasses
    path = record_path(records, variant, seed)
    if not osp.isfile(path):
        print(f'error: no record {path} to reproduce', file=sys.stderr)
        return 2
    original = read_record(path)
    spread = mean_std([r['bbox_mAP'] for r in load_records(records) if r['variant'] == variant])
    again_dir = osp.join(osp.dirname(records.rstrip('/')), 'reproductions')
    again_path = record_path(again_dir, variant, seed)
    if osp.exists(again_path):
        print(f'error: {again_path} exists; move it away to reproduce again', file=sys.stderr)
        return 2
    options = dataclasses.replace(options, work_dir=osp.join(options.work_dir, 'reproductions'))
    if run_grid(plan([VARIANTS[variant]], [seed], again_dir), options):
        return 1
    again = read_record(again_path)
    diff = again['bbox_mAP'] - original['bbox_mAP']
    tolerance = spread['std'] or 0.0
    print(f'{variant} seed {seed}: recorded bbox mAP {original["bbox_mAP"]:.4f} '
          f'(commit {original["code"]["commit"][:10]}), again {again["bbox_mAP"]:.4f} '
          f'(commit {again["code"]["commit"][:10]}): difference {diff:+.4f}; the variant\'s '
          f'std over {spread["n"]} seeds is {tolerance:.4f}')
    return 0 if abs(diff) <= tolerance else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet_ghm.study.aggregate import text_table
    from mmdet_ghm.study.runner import GridOptions, StudyError, plan, run_grid
    from mmdet_ghm.study.variants import VARIANTS
    if args.list:
        for name, v in VARIANTS.items():
            print(f'{name:22s} {v.dataset:6s} {v.recipe:5s} {v.group:12s} {v.label}  '
                  f'({v.config}' + (f', {v.epochs} epochs' if v.epochs else '')
                  + (f', noise {v.noise:g}' if v.noise is not None else '') + ')')
        return 0
    # the user's paths are relative to where they run the command; defaults to the repository
    default_records = args.records == osp.join(RESULTS, 'runs')
    records = osp.join(REPO, args.records) if default_records else osp.abspath(args.records)
    work_dir = (osp.join(REPO, args.work_dir) if args.work_dir == 'work_dirs/study'
                else osp.abspath(args.work_dir))
    pages = ([osp.abspath(page) for page in args.pages] if args.pages else
             [osp.join(REPO, page) for page in PAGES] if default_records and not args.quick
             else [])
    data_dir = osp.abspath(args.data_dir) if args.data_dir else osp.join(REPO, 'data')
    os.chdir(REPO)
    failed = []
    options = GridOptions(root=REPO, work_dir=work_dir, jobs=args.jobs, threads=args.threads,
                          quick=args.quick, data_dir=data_dir,
                          stall_timeout=args.stall_timeout)
    if args.reproduce:
        try:
            return reproduce(args.reproduce[0], int(args.reproduce[1]), records, options)
        except StudyError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    if args.migrate:
        try:
            migrate(records, data_dir)
        except ValueError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    if args.variants:
        runs = plan([VARIANTS[v] for v in args.variants], args.seeds, records)
        try:
            failed = run_grid(runs, options)
        except StudyError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    study = write_outputs(records, pages)
    print(text_table(study))
    if failed:
        print(f'FAILED: {", ".join(r.tag for r in failed)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
