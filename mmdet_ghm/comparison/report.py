"""The comparison's report: ``report.md``, ``curves.png`` and ``results.json``.

Everything in it is computed from the run records (:func:`summarize`), so the
report can be written again at any time and always agrees with them.
"""
from typing import Dict, List, Optional, Sequence

from mmdet_ghm.engine.hooks.ghm_stats_hook import shows_low_ap_signature
from mmdet_ghm.study.summaries import format_mean_std, mean_std
from mmdet_ghm.study.diagnosis import EASY_FRACTION_KEY, HARD_SHARE_KEY, late_mean

from .loss_settings import DESCRIPTIONS, GHM_SETTINGS
from .verdict import RULE, reference_setting, verdict

#: Table columns: (record key in ``final`` or the record, header, digits).
METRICS = (('bbox_mAP', 'mAP', 3), ('AP50', 'AP50', 3), ('AP75', 'AP75', 3),
           ('AP_small', 'AP small', 3), ('AP_medium', 'AP medium', 3),
           ('AP_large', 'AP large', 3))


def _value(record: dict, key: str):
    value = (record.get('final') or {}).get(key, record.get(key))
    return None if value is None or value < 0 else value  # COCO's -1: no such boxes


def signature(record: dict) -> Optional[Dict]:
    """GHMStatsHook's low-AP signature of one GHM run (None without GHM-C statistics)."""
    share = late_mean(record, HARD_SHARE_KEY)
    if share is None:
        return None
    easy = late_mean(record, EASY_FRACTION_KEY)
    return dict(seed=record['seed'], hard_share=share, easy_fraction=easy,
                sign=shows_low_ap_signature(share, easy),
                sampling=record.get('ghm_stats_sampling', 'last-batch'))


def summarize(records: Sequence[dict], settings: Sequence[str], own: Optional[str]) -> Dict:
    """Per setting: mean ± std of every metric, s/iter, peak memory, curve, signatures;
    and the verdict of each GHM setting against the reference loss."""
    out = dict(settings={}, reference=reference_setting(settings, own), verdicts={}, rule=RULE)
    for setting in settings:
        runs = sorted((r for r in records if r['variant'] == setting), key=lambda r: r['seed'])
        entry = dict(seeds=[r['seed'] for r in runs], n=len(runs))
        for key, _, _ in METRICS:
            entry[key] = mean_std([_value(r, key) for r in runs])
        entry['s_per_iter'] = mean_std([r.get('s_per_iter') for r in runs])
        entry['peak_rss_mib'] = max((r['peak_rss_mib'] for r in runs if r.get('peak_rss_mib')),
                                    default=None)
        entry['peak_gpu_mib'] = max((r['peak_gpu_mib'] for r in runs if r.get('peak_gpu_mib')),
                                    default=None)
        by_epoch: Dict[int, List[float]] = {}
        for record in runs:
            for point in record.get('val_curve') or []:
                if point.get('bbox_mAP') is not None:
                    by_epoch.setdefault(point['epoch'], []).append(point['bbox_mAP'])
        entry['curve'] = [dict(epoch=e, **mean_std(v)) for e, v in sorted(by_epoch.items())]
        entry['signatures'] = [s for s in map(signature, runs) if s is not None]
        entry['records'] = [r.get('record') for r in runs]
        out['settings'][setting] = entry
    reference = out['reference']
    for setting in settings:
        is_ghm = setting in GHM_SETTINGS or (setting == 'own' and own in GHM_SETTINGS)
        if reference is None or not is_ghm or setting == reference:
            continue
        word, why = verdict(out['settings'][setting]['bbox_mAP'],
                            out['settings'][reference]['bbox_mAP'])
        out['verdicts'][setting] = dict(verdict=word, why=why)
    return out


def _memory(entry: Dict) -> str:
    parts = []
    if entry.get('peak_rss_mib'):
        parts.append(f'{entry["peak_rss_mib"]:.0f} MiB RSS')
    if entry.get('peak_gpu_mib'):
        parts.append(f'{entry["peak_gpu_mib"]:.0f} MiB GPU')
    return ', '.join(parts) or '–'


def render_table(summary: Dict, labels: Dict[str, str]) -> str:
    """The Markdown table: one row per setting, mean ± std over its seeds."""
    head = ['loss', 'seeds'] + [h for _, h, _ in METRICS] + ['s/iter', 'peak memory']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for setting, entry in summary['settings'].items():
        cells = [f'`{setting}` ({labels.get(setting, DESCRIPTIONS.get(setting, ""))})',
                 str(entry['n'])]
        cells += [format_mean_std(entry[key], digits) for key, _, digits in METRICS]
        cells += [format_mean_std(entry['s_per_iter'], 2), _memory(entry)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def render_verdicts(summary: Dict) -> str:
    """The verdict lines, and the rule they follow."""
    reference = summary['reference']
    if not summary['verdicts']:
        why = ('no GHM setting was trained' if reference else
               'there is no reference loss (FL, a non-GHM own loss, or CE) to compare with')
        return f'No verdict: {why}.\n\nRule: {summary["rule"]}'
    lines = []
    for setting, v in summary['verdicts'].items():
        lines.append(f'- **`{setting}` vs `{reference}`: {v["verdict"]}** ({v["why"]}).')
    return '\n'.join(lines) + f'\n\nRule: {summary["rule"]}'


def render_signatures(summary: Dict) -> str:
    """GHMStatsHook's low-AP signature, one line per GHM run."""
    lines = []
    for setting, entry in summary['settings'].items():
        for s in entry['signatures']:
            easy = '–' if s['easy_fraction'] is None else f'{s["easy_fraction"]:.2f}'
            lines.append(f'| `{setting}` | {s["seed"]} | {s["hard_share"]:.2f} | {easy} | '
                         f'{"**yes**" if s["sign"] else "no"} |')
    if not lines:
        return 'No GHM-C run with GHMStatsHook statistics.'
    return ('| loss | seed | weight share of g >= 0.5 | elements in the easiest region | '
            'low-AP signature |\n|---|---|---|---|---|\n' + '\n'.join(lines) +
            '\n\nThe statistics are GHM-C\'s over the last 10 % of training. The signature '
            '(share >= 0.25 or easiest region < 0.8) went with runs that ended far below Focal '
            'Loss in the mmdet-ghm study (docs/study.md, "A warning for the low-AP runs").')


def render_report(comparison_info: Dict, summary: Dict, anchors: Optional[str] = None) -> str:
    """The whole ``report.md``.

    ``comparison_info``: ``config``, ``cfg_options``, ``clip``, ``head``,
    ``notes`` (per setting), ``labels`` (per setting), ``work_dir``,
    ``provenance`` (``commit``, ``dirty``, ``versions``, ``machine``, ``date``).
    """
    info = comparison_info
    prov = info['provenance']
    lines = [f'# Loss comparison on `{info["config"]}`', '']
    options = ' '.join(f'`{k}={v}`' for k, v in (info['cfg_options'] or {}).items())
    lines.append(f'Head: `{info["head"]}`. Gradient clipping: {info["clip"]}. '
                 f'`--cfg-options`: {options or "none"}.')
    lines.append('')
    lines.append('## Results (COCO bbox metrics on the val set after the last epoch, mean ± '
                 'sample std over seeds)')
    lines.append('')
    lines.append(render_table(summary, info['labels']))
    lines.append('')
    lines.append('s/iter: mean training time per iteration (depends on what else ran beside '
                 'it). Curves: `curves.png`. Records: `records/<loss>/seed<k>.json`.')
    lines.append('')
    lines.append(f'## Verdict (reference: `{summary["reference"]}`)')
    lines.append('')
    lines.append(render_verdicts(summary))
    lines.append('')
    lines.append('## GHMStatsHook\'s signature per GHM run')
    lines.append('')
    lines.append(render_signatures(summary))
    lines.append('')
    if anchors:
        lines += ['## How the anchors fit the boxes', '', anchors, '']
    lines.append('## What was swapped')
    lines.append('')
    for setting in summary['settings']:
        notes = '; '.join(info['notes'].get(setting) or []) or 'nothing else'
        notes = notes[:1].upper() + notes[1:]
        lines.append(f'- `{setting}`: {info["labels"].get(setting, "")}. {notes}.')
    lines.append('')
    lines.append('## Provenance')
    lines.append('')
    lines.append(f'mmdet-ghm commit {prov.get("commit") or "unknown"}'
                 + (' (with uncommitted changes)' if prov.get('dirty') else '') +
                 f'; {prov.get("versions")}; machine: {prov.get("machine")}; '
                 f'report written {prov.get("date")}.')
    return '\n'.join(lines) + '\n'


def plot_curves(summary: Dict, path: str, title: str) -> None:
    """Val mAP over epochs, one line per loss (mean over seeds), seeds' spread shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for setting, entry in summary['settings'].items():
        curve = entry['curve']
        if not curve:
            continue
        epochs = [p['epoch'] for p in curve]
        means = [p['mean'] for p in curve]
        line, = ax.plot(epochs, means, marker='o', ms=3, label=f'{setting} (n={entry["n"]})')
        spread = [(p['mean'] - p['std'], p['mean'] + p['std']) if p['std'] is not None
                  else (p['mean'], p['mean']) for p in curve]
        ax.fill_between(epochs, [s[0] for s in spread], [s[1] for s in spread],
                        color=line.get_color(), alpha=0.2)
    ax.set_xlabel('epoch')
    ax.set_ylabel('val bbox mAP')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

