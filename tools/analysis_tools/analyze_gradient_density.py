#!/usr/bin/env python3
"""Gradient-norm distribution and density analysis of a RetinaNet (GHM paper, Figs. 1-4).

Runs a trained model over images of a split, takes the head's own training
targets, and writes under ``--out-dir``:

* ``g_distribution.png``         (a) distribution of g = |p - p*| (log y);
* ``reweighted_gradient.png``    (b) per-example gradient norm vs g under
  CE, Focal Loss (gamma 2) and GHM-C (weights from this data's density);
* ``cls_contribution.png``       (c) total gradient of each g region under
  CE, FL (gamma 2, alpha 0.25) and GHM-C;
* ``reg_contribution.png``       (d) the same for box regression: Smooth L1
  (beta 0.11), Authentic Smooth L1 and GHM-R;
* ``gradient_density.json``      every number in the figures, and how each
  loss's classification gradient splits between positives (t = 1) and
  negatives, per region and in total (also printed as a table).

Usage::

    python3 tools/analysis_tools/analyze_gradient_density.py CONFIG CHECKPOINT \\
        [--split val] [--num-images 200] [--out-dir DIR] [--overwrite]

The checkpoint is read through MMEngine's loader after ``import mmdet_ghm``
(so its safe ``weights_only`` loading applies).
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import DictAction

OUTPUTS = ('g_distribution.png', 'reweighted_gradient.png', 'cls_contribution.png',
           'reg_contribution.png', 'gradient_density.json')
COLORS = dict(ce='tab:blue', fl='tab:orange', ghmc='tab:green', sl1='tab:blue',
              asl1='tab:orange', ghmr='tab:green')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Gradient-norm distribution and density analysis of a RetinaNet '
        '(GHM paper figures) on a data split.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--split', default='val', choices=['train', 'val', 'test'],
                        help='data split of the config (default: val); train images go '
                        'through the val pipeline (no augmentation)')
    parser.add_argument('--num-images', type=int, default=200,
                        help='number of images (default: 200; fewer if the split is smaller)')
    parser.add_argument('--batch-size', type=int, default=2, help='images per batch')
    parser.add_argument('--out-dir', default=None,
                        help='output directory (default: <checkpoint dir>/gradient_density_'
                        '<checkpoint name>_<split>)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs in --out-dir')
    parser.add_argument('--cls-bins', type=int, default=None,
                        help='GHM-C regions (default: the model\'s GHMCLoss bins, else 30)')
    parser.add_argument('--reg-bins', type=int, default=None,
                        help='GHM-R regions (default: the model\'s GHMRLoss bins, else 10)')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value (as in tools/train.py)')
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint not found: {args.checkpoint!r}')
    if not osp.isfile(args.config):
        parser.error(f'config not found: {args.config!r}')
    return args


def default_out_dir(checkpoint: str, split: str) -> str:
    stem = osp.splitext(osp.basename(checkpoint))[0]
    return osp.join(osp.dirname(osp.abspath(checkpoint)), f'gradient_density_{stem}_{split}')


def check_out_dir(out_dir: str, overwrite: bool) -> None:
    """Refuse to replace earlier outputs unless ``overwrite``."""
    existing = [name for name in OUTPUTS if osp.exists(osp.join(out_dir, name))]
    if existing and not overwrite:
        raise FileExistsError(f'{out_dir} already holds {existing}; pass --overwrite to '
                              'replace them or choose another --out-dir')
    os.makedirs(out_dir, exist_ok=True)


def build(args):
    """Model (checkpoint loaded, eval mode) and dataloader of the split."""
    import mmdet_ghm  # noqa: F401  (losses, datasets, safe checkpoint loading)
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model
    model_cfg.get('backbone', {}).pop('init_cfg', None)  # weights come from the checkpoint
    model = MODELS.build(model_cfg)
    load_checkpoint(model, args.checkpoint, map_location='cpu', revise_keys=[])
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device).eval()

    loader_cfg = cfg.get(f'{args.split}_dataloader')
    if loader_cfg is None:
        raise ValueError(f'the config has no {args.split}_dataloader')
    dataset = loader_cfg.dataset.copy()
    if args.split == 'train':  # no augmentation; keep the ground truth
        dataset.pipeline = cfg.val_dataloader.dataset.pipeline
        dataset.pop('test_mode', None)
    loader = Runner.build_dataloader(dict(
        batch_size=args.batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset))
    return model, loader


def loss_defaults(model):
    """GHM bins and mu from the model's GHM losses, else the published values."""
    from mmdet_ghm.losses import GHMCLoss, GHMRLoss
    head = model.bbox_head
    cls = head.loss_cls if isinstance(head.loss_cls, GHMCLoss) else None
    reg = head.loss_bbox if isinstance(head.loss_bbox, GHMRLoss) else None
    return dict(cls_bins=cls.bins if cls else 30, reg_bins=reg.bins if reg else 10,
                mu=reg.mu if reg else 0.02)


def collect(model, loader, num_images: int, stats):
    """Feed up to ``num_images`` images through the model into ``stats``."""
    from mmengine.utils import ProgressBar
    from mmdet_ghm.analysis.gradient_stats import update_from_batch
    total = min(num_images, len(loader.dataset))
    bar = ProgressBar(total)
    for data in loader:
        left = total - stats.num_images
        if left <= 0:
            break
        if len(data['data_samples']) > left:
            data = {k: v[:left] for k, v in data.items()}
        update_from_batch(stats, model, data)
        for _ in data['data_samples']:
            bar.update()
    sys.stdout.write('\n')
    return stats


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def _centers(edges):
    edges = np.asarray(edges)
    return (edges[:-1] + edges[1:]) / 2


def _finish(fig, ax_list, path):
    for ax in ax_list:
        ax.grid(alpha=0.3, which='both')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_distribution(res, title, path):
    """(a) fraction of elements per fine bin of g, log y."""
    import matplotlib.pyplot as plt
    hist = res['histogram']
    centers, width = _centers(hist['edges']), 1.0 / res['params']['hist_bins']
    neg, pos = np.asarray(hist['cls_negative']), np.asarray(hist['cls_positive'])
    total = max((neg + pos).sum(), 1)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.bar(centers, (neg + pos) / total, width=width, color='0.75', label='all elements')
    ax.step(centers, neg / total, where='mid', color='tab:blue', label='negative targets (t = 0)')
    ax.step(centers, pos / total, where='mid', color='tab:red', label='positive targets (t = 1)')
    ax.set_yscale('log')
    ax.set_xlim(0, 1)
    ax.set_xlabel('gradient norm g = |p - p*|')
    ax.set_ylabel(f'fraction of elements (bin width {width:g})')
    cls = res['classification']
    ax.set_title(f'{title}\n(a) distribution of g: {cls["num_elements"]:,} (anchor, class) '
                 f'elements, {cls["num_positive"]:,} positive, {res["num_images"]} images',
                 fontsize=10)
    ax.legend()
    _finish(fig, [ax], path)
    plt.close(fig)


def _ghm_step(edges, weights, values):
    """x, y of the step function ``weights[region(x)] * values(x)`` on a fine grid."""
    x = np.linspace(1e-4, 1 - 1e-4, 2000)
    region = np.clip(np.searchsorted(np.asarray(edges), x, side='right') - 1, 0,
                     len(weights) - 1)
    y = np.asarray(weights)[region] * values(x)
    return x, np.where(y > 0, y, np.nan)


def plot_reweighted(res, title, path):
    """(b) per-element gradient norm vs g under CE, FL and GHM-C."""
    import matplotlib.pyplot as plt
    from mmdet_ghm.analysis.gradient_stats import focal_gradient_norm
    cls, gamma = res['classification'], res['params']['fl_gamma']
    x = np.linspace(1e-4, 1 - 1e-4, 2000)
    fl = focal_gradient_norm(torch.from_numpy(x), gamma).numpy()
    xg, yg = _ghm_step(cls['edges'], cls['ghm_weights'], lambda v: v)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(x, x, color=COLORS['ce'], label='CE: g')
    ax.plot(x, fl, color=COLORS['fl'],
            label=f'FL (gamma={gamma:g}, alpha omitted): |dFL/dx|')
    ax.plot(xg, yg, color=COLORS['ghmc'], label=f'GHM-C: beta(g) * g, {len(cls["counts"])} '
            'regions, density of this data')
    ax.set_yscale('log')
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-6))
    ax.set_xlabel('original gradient norm g = |p - p*|')
    ax.set_ylabel('reweighted gradient norm of one element')
    ax.set_title(f'{title}\n(b) reweighted gradient norm per element; empty GHM regions '
                 'not drawn', fontsize=10)
    ax.legend()
    _finish(fig, [ax], path)
    plt.close(fig)


def _contribution_axes(ax, part, keys, labels):
    centers = _centers(part['edges'])
    counts = np.asarray(part['counts'])
    width = (part['edges'][1] - part['edges'][0]) / (len(keys) + 1)
    for i, key in enumerate(keys):
        share = np.asarray(part['share'][key])
        share = np.where(counts > 0, share, np.nan)
        ax.bar(centers + (i - (len(keys) - 1) / 2) * width, share, width=width,
               color=COLORS[key], label=labels[key])
    ax.set_yscale('log')
    ax.set_xlim(0, 1)
    ax.set_ylabel('share of the total gradient norm')
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.13), ncol=len(keys), fontsize=9)


def plot_cls_contribution(res, title, path):
    """(c) share of the total classification gradient per GHM-C region."""
    import matplotlib.pyplot as plt
    p, cls = res['params'], res['classification']
    fig, ax = plt.subplots(figsize=(9, 5.5))
    _contribution_axes(ax, cls, ('ce', 'fl', 'ghmc'), dict(
        ce='CE', fl=f'FL (gamma={p["fl_gamma"]:g}, alpha={p["fl_alpha"]:g})',
        ghmc='GHM-C'))
    ax.set_xlabel(f'gradient norm g = |p - p*| ({p["cls_bins"]} regions)')
    ax.set_title(f'{title}\n(c) total gradient contribution of each g region (classification, '
                 f'{cls["num_elements"]:,} elements)', fontsize=10)
    _finish(fig, [ax], path)
    plt.close(fig)


def plot_reg_contribution(res, title, path):
    """(d) regression: distribution of g_r and share of the total gradient per region."""
    import matplotlib.pyplot as plt
    from mmdet_ghm.analysis.gradient_stats import smooth_l1_gradient_norm
    p, reg, hist = res['params'], res['regression'], res['histogram']
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    counts = np.asarray(hist['reg'])
    axes[0].bar(_centers(hist['edges']), counts / max(counts.sum(), 1),
                width=1.0 / p['hist_bins'], color='0.6')
    axes[0].set_yscale('log')
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel(f'ASL1 gradient norm g_r = |d| / sqrt(d^2 + mu^2), mu={p["mu"]:g}')
    axes[0].set_ylabel('fraction of positive box coordinates')
    axes[0].set_title(f'distribution of g_r ({reg["num_elements"]:,} coordinates)')

    mu, beta = p['mu'], p['sl1_beta']
    x = np.linspace(1e-4, 1 - 1e-4, 2000)
    d_abs = mu * x / np.sqrt(1 - x * x)
    axes[1].plot(x, smooth_l1_gradient_norm(torch.from_numpy(d_abs), beta).numpy(),
                 color=COLORS['sl1'], label=f'Smooth L1 (beta={beta:g}): min(|d|/beta, 1)')
    axes[1].plot(x, x, color=COLORS['asl1'], label='ASL1: g_r')
    xg, yg = _ghm_step(reg['edges'], reg['ghm_weights'], lambda v: v)
    axes[1].plot(xg, yg, color=COLORS['ghmr'], label='GHM-R: beta(g_r) * g_r')
    axes[1].set_yscale('log')
    axes[1].set_ylim(bottom=max(axes[1].get_ylim()[0], 1e-6))
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel('g_r')
    axes[1].set_ylabel('gradient norm of one coordinate')
    axes[1].set_title('reweighted gradient norm per coordinate')
    axes[1].legend(fontsize=9)

    _contribution_axes(axes[2], reg, ('sl1', 'asl1', 'ghmr'), dict(
        sl1=f'Smooth L1 (beta={beta:g})', asl1=f'ASL1 (mu={mu:g})', ghmr='GHM-R'))
    axes[2].set_xlabel(f'g_r ({p["reg_bins"]} regions)')
    axes[2].set_title('total gradient contribution of each g_r region')
    fig.suptitle(f'{title} - (d) box regression', fontsize=11)
    _finish(fig, axes, path)
    plt.close(fig)


def _pct(value) -> str:
    return '   -  ' if value is None else f'{100 * value:6.2f}'


def positive_split_lines(res: dict) -> list:
    """The printed table: per non-empty GHM-C region, positives and negatives and the
    share of each loss's total classification gradient they carry; then the headline
    shares of the gradient on positives and the normalised totals."""
    cls, p = res['classification'], res['params']
    keys = (('ce', 'CE'), ('fl', 'FL'), ('ghmc', 'GHM-C'))
    head = f'{"region of g":>15} {"positives":>10} {"negatives":>12}' + ''.join(
        f' {name + " %pos":>10} {name + " %neg":>10}' for _, name in keys)
    lines = [f'classification gradient by target, {p["cls_bins"]} regions (% of each '
             'loss\'s total sum of |dL/dx|):', head]
    edges = cls['edges']
    for j, count in enumerate(cls['counts']):
        if count <= 0:
            continue
        lines.append(f'[{edges[j]:.3f}, {edges[j + 1]:.3f}) {cls["counts_positive"][j]:10,.0f} '
                     f'{cls["counts_negative"][j]:12,.0f}' + ''.join(
                         f' {_pct(cls["share_positive"][k][j]):>10} '
                         f'{_pct(cls["share_negative"][k][j]):>10}' for k, _ in keys))
    lines.append(f'{"all":>15} {cls["num_positive"]:10,} {cls["num_negative"]:12,}')
    on_pos = cls['gradient_on_positives']
    hard = 'none' if cls['hard_from'] is None else f'g >= {cls["hard_from"]:.3f}'
    for part, label in (('all', 'all elements'),
                        ('easiest_region', f'g < {edges[1]:.3f} (easiest region)'),
                        ('hard', hard)):
        lines.append(f'share of the classification gradient on positives, {label}: ' + ', '.join(
            f'{name} ' + ('-' if on_pos[k][part] is None else f'{100 * on_pos[k][part]:.3g} %')
            for k, name in keys))
    norm = cls['normalised_total_gradient']
    lines.append('normalised total gradient (CE, FL: / positives; GHM-C: / elements), '
                 'positives | negatives: ' + ', '.join(
                     f'{name} {norm[k]["positive"]:.4g} | {norm[k]["negative"]:.4g}'
                     for k, name in keys if norm[k]['positive'] is not None))
    return lines


def write_outputs(res: dict, title: str, out_dir: str) -> None:
    """The four figures and the JSON."""
    import matplotlib
    matplotlib.use('Agg')
    plot_distribution(res, title, osp.join(out_dir, OUTPUTS[0]))
    plot_reweighted(res, title, osp.join(out_dir, OUTPUTS[1]))
    plot_cls_contribution(res, title, osp.join(out_dir, OUTPUTS[2]))
    plot_reg_contribution(res, title, osp.join(out_dir, OUTPUTS[3]))
    with open(osp.join(out_dir, OUTPUTS[4]), 'w') as f:
        json.dump(res, f, indent=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir or default_out_dir(args.checkpoint, args.split)
    check_out_dir(out_dir, args.overwrite)
    from mmdet_ghm.analysis.gradient_stats import GradientStats
    model, loader = build(args)
    defaults = loss_defaults(model)
    stats = GradientStats(cls_bins=args.cls_bins or defaults['cls_bins'],
                          reg_bins=args.reg_bins or defaults['reg_bins'], mu=defaults['mu'])
    collect(model, loader, args.num_images, stats)
    res = stats.result()
    res.update(config=args.config, checkpoint=args.checkpoint, split=args.split)
    title = f'{osp.basename(args.checkpoint)} ({osp.basename(args.config)}), {args.split} split'
    write_outputs(res, title, out_dir)
    cls, reg = res['classification'], res['regression']
    print(f'{res["num_images"]} images: {cls["num_elements"]:,} classification elements '
          f'({cls["num_positive"]:,} positive), {reg["num_elements"]:,} box coordinates')
    print(f'share of elements with g < {cls["edges"][1]:.3f}: '
          f'{cls["counts"][0] / max(cls["num_elements"], 1):.4f}; its share of the total '
          f'gradient: CE {cls["share"]["ce"][0]:.3f}, FL {cls["share"]["fl"][0]:.3f}, '
          f'GHM-C {cls["share"]["ghmc"][0]:.3f}')
    print('\n'.join(positive_split_lines(res)))
    print(f'wrote {", ".join(OUTPUTS)} to {out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
