#!/usr/bin/env python3
"""The gradient split of trained study runs, as committed records (issue 35's mechanism).

For each study run (variant x seed) whose record exists, finds the run's final
checkpoint in the study's work directory, rebuilds the model and data exactly as
the run trained them (its ``spec.json``: config and overrides), feeds the split
through ``analyze_gradient_density.py``'s analysis (train images through the val
pipeline) and writes ``docs/results/analysis/gradient_split/<variant>-seed<k>-<split>.json``:
how CE, FL and GHM-C would split the classification gradient between positives and
negatives on that model's predictions, per region of g. The records name the run's
record, its portable overrides and the code and machine that measured them; the
study's ``gradient-split`` block (docs/study.md) is generated from them.

Usage::

    python3 tools/analysis_tools/gradient_split_records.py \\
        --variants lite0-corrected-crowns-fl lite0-corrected-crowns-ghm --seeds 0 \\
        [--work-dir work_dirs/study] [--splits train val] [--overwrite]
"""
import argparse
import copy
import os.path as osp
import sys
from types import SimpleNamespace

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmdet_ghm.study.analysis_records import (RESULTS, add_run_arguments,  # noqa: E402
                                              pending_measurements)
from mmdet_ghm.study.mechanism import GRADIENT_SPLIT_DIR, split_record  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_run_arguments(parser)
    parser.add_argument('--num-images', type=int, default=200,
                        help='images per split (default: 200; fewer if the split is smaller)')
    parser.add_argument('--cls-bins', type=int, default=30, help='GHM-C regions (default: 30)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing records')
    return parser.parse_args(argv)


def analyse(spec: dict, checkpoint: str, split: str, num_images: int, cls_bins: int) -> dict:
    """``analyze_gradient_density``'s result for one run's checkpoint on ``split``."""
    import analyze_gradient_density as agd
    from mmdet_ghm.analysis.gradient_stats import GradientStats
    args = SimpleNamespace(config=osp.join(REPO, spec['config_rel']), checkpoint=checkpoint,
                           cfg_options=copy.deepcopy(spec['overrides']), split=split,
                           batch_size=2, device='cpu')
    model, loader = agd.build(args)
    defaults = agd.loss_defaults(model)
    stats = GradientStats(cls_bins=cls_bins, reg_bins=defaults['reg_bins'], mu=defaults['mu'])
    agd.collect(model, loader, num_images, stats)
    return stats.result()


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet_ghm.study.records import code_state, environment, write_json_atomic
    code, env = code_state(REPO), environment(REPO)
    try:
        pending = pending_measurements(REPO, RESULTS, GRADIENT_SPLIT_DIR, args)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    for (_, _, record, epochs, spec, checkpoint), split, out in pending:
        result = analyse(spec, checkpoint, split, args.num_images, args.cls_bins)
        write_json_atomic(out, split_record(result, spec, record, epochs, split,
                                            code, env))
        print(f'wrote {osp.relpath(out, REPO)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
