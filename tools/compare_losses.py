#!/usr/bin/env python3
"""Does GHM help on my data? Compare losses on any detector config, with a report and a verdict.

Trains the config once per loss setting and seed, each an ordinary
MMDetection training and evaluation with only the loss swapped in (the same
gradient clipping for all), resumably and locked, then writes
``<work-dir>/report.md`` (table of mAP, AP50, AP75, AP small/medium/large,
s/iter and peak memory per loss, mean ± std over seeds; GHMStatsHook's
signature per GHM run; the verdict and its rule) and ``curves.png``.
Running the same command again continues where it stopped.

Usage::

    python tools/compare_losses.py CONFIG [--losses own fl ghm] [--seeds 0 1 2]
        [--work-dir DIR] [--cfg-options k=v ...] [--jobs N] [--clip-grad NORM|none]
    mim run mmdet_ghm compare_losses CONFIG ...

Loss settings: own (the config as it is), ce, fl, ghm (GHM-C + GHM-R,
published), ghm-cap (the same with weight_cap 100); defined once in
configs/_base_/losses/loss_settings.py. Heads: RetinaNet, FCOS, ATSS, GFL,
Faster R-CNN's R-CNN head and GHMSSDHead (docs/compare_losses.md).
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmdet_ghm.comparison.engine import DEFAULT_SEEDS
    from mmdet_ghm.comparison.loss_settings import SETTINGS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the detector config to compare losses on')
    parser.add_argument('--losses', nargs='+', default=None, metavar='LOSS',
                        help=f'loss settings, any of: {" ".join(SETTINGS)} (default: own fl '
                        'ghm, those that apply to the head, without the one the config '
                        'already uses)')
    parser.add_argument('--seeds', nargs='+', type=int, default=list(DEFAULT_SEEDS),
                        help='seeds of every loss (default: 0 1 2)')
    parser.add_argument('--work-dir', default=None,
                        help='where the runs, records and report go (default: '
                        'work_dirs/compare_losses/<config name>); rerunning with the same '
                        'work dir continues the comparison')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides (key=value) applied to every run, as in '
                        'tools/train.py, e.g. train_cfg.max_epochs=12')
    parser.add_argument('--epochs', type=int, default=None,
                        help='train every run this many epochs, stretching the config\'s '
                        'epoch-based schedule (cosine, steps) to it')
    parser.add_argument('--clip-grad', default=None, metavar='NORM|none',
                        help='gradient clipping of every run (default: the config\'s own, '
                        'else max_norm 35 as the GHM configs)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained side by side (CPU; default 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads per run (default: the cores / --jobs)')
    parser.add_argument('--launcher', choices=('none', 'pytorch'), default='none',
                        help='pytorch: train each run over --gpus GPUs with torchrun, as '
                        'tools/dist_train.sh (runs one after another)')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs per run with --launcher '
                        'pytorch')
    parser.add_argument('--stall-timeout', type=float, default=900,
                        help='kill a run that writes no progress for this many seconds')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing; write the report from the records there are')
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    return args


def provenance(code_root: str) -> dict:
    """Commit, versions, machine and date, as the records give them (``code_state``,
    ``environment``)."""
    import torch

    from mmdet_ghm.study.records import code_state, environment
    code, env = code_state(code_root), environment()
    return dict(commit=code.get('commit'), dirty=code.get('dirty'),
                versions=f'torch {env["torch"]}, mmcv {env["mmcv"]}, mmdet {env["mmdet"]}, '
                f'mmengine {env["mmengine"]}',
                machine=f'{env["machine"]["cpu"]}, {env["machine"]["cores"]} cores' + (
                    f', {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ''),
                date=env['date'])


def write_report(comparison, echo=print, extra=None) -> dict:
    """``report.md``, ``curves.png`` and ``results.json`` from the records; the summary.

    ``extra``: more top-level entries of ``results.json`` (the main job's run facts).
    """
    from mmdet_ghm.comparison import anchor_report
    from mmdet_ghm.comparison.engine import code_root, records
    from mmdet_ghm.comparison.report import plot_curves, render_report, summarize
    from mmdet_ghm.study.data_sets import relative_paths
    from mmdet_ghm.study.records import write_json_atomic
    recs = records(comparison)
    for record in recs:
        record['record'] = osp.join('records', record['record'])
    summary = summarize(recs, comparison.settings, comparison.own)
    info = dict(config=comparison.config_rel,
                cfg_options=relative_paths(comparison.options.cfg_options, comparison.cwd),
                clip=comparison.clip_note, head=comparison.kind.name, notes=comparison.notes,
                labels={v.name: v.label for v in comparison.variants},
                provenance=provenance(code_root()))
    work_dir = comparison.work_dir
    anchors = anchor_report.render(
        anchor_report.cached_measure(comparison.cfg, work_dir, comparison.cwd))
    with open(osp.join(work_dir, 'report.md'), 'w') as f:
        f.write(render_report(info, summary, anchors))
    plot_curves(summary, osp.join(work_dir, 'curves.png'), comparison.config_rel)
    write_json_atomic(osp.join(work_dir, 'results.json'),
                      dict(info=info, summary=summary, **(extra or {})))
    echo(f'wrote {work_dir}/report.md, curves.png and results.json')
    return summary


def print_summary(summary: dict, echo=print) -> None:
    from mmdet_ghm.study.aggregate import format_mean_std as fmt
    for setting, entry in summary['settings'].items():
        echo(f'  {setting:8s} seeds {entry["n"]}: mAP {fmt(entry["bbox_mAP"])}, '
             f'AP50 {fmt(entry["AP50"])}')
    for setting, v in summary['verdicts'].items():
        echo(f'  verdict {setting} vs {summary["reference"]}: {v["verdict"]} ({v["why"]})')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet_ghm.comparison.engine import CompareError, CompareOptions, prepare, run
    options = CompareOptions(
        config=args.config, losses=args.losses, seeds=args.seeds, work_dir=args.work_dir,
        cfg_options=dict(args.cfg_options or {}), clip=args.clip_grad, epochs=args.epochs,
        jobs=args.jobs, threads=args.threads, launcher=args.launcher, gpus=args.gpus,
        stall_timeout=args.stall_timeout)
    try:
        comparison = prepare(options)
    except (CompareError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'comparing {" ".join(comparison.settings)} x seeds {list(args.seeds)} on '
          f'{comparison.config_rel} ({comparison.kind.name}); work dir {comparison.work_dir}')
    failed = []
    if not args.report_only:
        try:
            failed = run(comparison)
        except CompareError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    summary = write_report(comparison)
    print_summary(summary)
    if failed:
        print(f'FAILED: {", ".join(r.tag for r in failed)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
