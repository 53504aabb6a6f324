#!/usr/bin/env python3
"""How each crowns set-up of the study covers the crowns, as committed records (issue 35).

For the corrected crowns cell and every ablation factor that changes the anchors, the
assigner, the neck or the train pipeline (``mmdet_ghm.study.coverage``), builds the
FL variant's config with its overrides, passes the train split once through its
train pipeline (seeded, as ``anchor_coverage.py`` does) and writes the anchor-coverage
report to ``docs/results/analysis/anchor_coverage/<set-up>.json``, with the code and
machine that measured it. The study's ``ablation-coverage`` block (docs/study.md) is
generated from them.

Usage::

    python3 tools/analysis_tools/anchor_coverage_records.py [--setups corrected anchors3 ...]
        [--data-dir data] [--seed 0] [--overwrite]
"""
import argparse
import copy
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmdet_ghm.study.coverage import (COVERAGE_DIR, coverage_record,  # noqa: E402
                                      coverage_setups)

RESULTS = 'docs/results'


def parse_args(argv=None):
    setups = coverage_setups()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--setups', nargs='+', default=setups, choices=setups,
                        help='set-ups to measure (default: all of them)')
    parser.add_argument('--data-dir', default=None,
                        help='directory of the data sets (default: the repository\'s data/)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the pipeline (default: 0)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing records')
    return parser.parse_args(argv)


def fl_variant(setup: str) -> str:
    """The FL variant that trains ``setup`` (its set-up overrides are GHM's too)."""
    from mmdet_ghm.study.ablation import ablation_name, cell_name
    from mmdet_ghm.study.variants import CORRECTED_SETUP
    return cell_name('fl') if setup == CORRECTED_SETUP else ablation_name('fl', setup)


def measure(variant, data_dir, seed: int) -> dict:
    """``anchor_coverage``'s report on the train split of ``variant`` as it trains."""
    import mmdet_ghm  # noqa: F401  (registers the package's datasets and modules)
    from mmengine.config import Config

    from mmdet_ghm.analysis.anchor_coverage import anchor_coverage
    from mmdet_ghm.analysis.training_boxes import collect_boxes, coverage_inputs, head_settings
    from mmdet_ghm.study.data_sets import data_settings, run_overrides
    cfg = Config.fromfile(osp.join(REPO, variant.config))
    set_id, root, params = data_settings(variant, quick=False, data_dir=data_dir)
    cfg.merge_from_dict(run_overrides(variant.dataset, root, params, quick=False))
    cfg.merge_from_dict(copy.deepcopy(variant.overrides))
    settings = head_settings(cfg)
    data = collect_boxes(cfg, 'train', augment=True, seed=seed)
    report = anchor_coverage(**coverage_inputs(settings, data))
    report['data'] = dict(id=set_id, split='train', source=data['source'], seed=seed,
                          num_images=data['num_images'], skipped=data['skipped'])
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet_ghm.study.records import code_state, environment, write_json_atomic
    from mmdet_ghm.study.variants import get_variant
    code, env = code_state(REPO), environment(REPO)
    for setup in args.setups:
        out = osp.join(REPO, RESULTS, COVERAGE_DIR, f'{setup}.json')
        if osp.exists(out) and not args.overwrite:
            print(f'{osp.relpath(out, REPO)} exists (--overwrite replaces it)')
            continue
        variant = get_variant(fl_variant(setup))
        report = measure(variant, args.data_dir, args.seed)
        write_json_atomic(out, coverage_record(report, setup, variant.name, variant.config,
                                               variant.overrides, code, env))
        overall = report['overall']
        print(f'wrote {osp.relpath(out, REPO)}: {overall["num_boxes"]} crowns, '
              f'{overall["positives_per_box"]["mean"]:.1f} positives per crown, '
              f'{100 * overall["uncovered_share"]:.1f} % without an anchor at the positive IoU')
    return 0


if __name__ == '__main__':
    sys.exit(main())
