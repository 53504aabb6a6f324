"""The users' checklist (issue 35): the set-up choices to check first before comparing
GHM with FL on your own data, in the order of how much each moved GHM's share of FL's
mAP in the tree-crowns ablation, each with its numbers and runs.

An item's advice rests on the sign of the change it measured
(:attr:`ChecklistItem.direction`); rendering refuses a checklist the records
contradict, so advice and records cannot drift apart silently.
"""
import posixpath
from dataclasses import dataclass
from typing import Dict, List, Tuple

from .ablation import ablation_rows, describe_change


@dataclass(frozen=True)
class ChecklistItem:
    """One item: ``factors`` are ablation factors (``ABLATION_FACTORS``) that measure
    it; ``direction`` is the sign of the change of GHM's share of FL's mAP the advice
    rests on (+1: the factor raised it, -1: lowered it); ``advice`` is Markdown in
    which ``{docs}`` is the path from the page to ``docs/``."""
    title: str
    factors: Tuple[str, ...]
    direction: int
    advice: str


CHECKLIST = (
    ChecklistItem(
        'Anchors that fit your objects', ('anchors3', 'anchors2'), +1,
        'Run `tools/analysis_tools/anchor_coverage.py` on your config '
        '([anchor_coverage.md]({docs}/anchor_coverage.md)) and scale the anchors as it '
        'suggests before you compare losses.'),
    ChecklistItem(
        'Not a looser assigner', ('assigner-0.4',), -1,
        'Lowering `pos_iou_thr` gives each object more positives, but loosely fitting ones: '
        'do not use it in place of anchors that fit.'),
    ChecklistItem(
        'Scale augmentation', ('no-jitter',), +1,
        'Scale jitter and random crop cost GHM more than FL: compare the losses with and '
        'without them.'),
)
#: What the last line calls a factor that moved GHM's share little (absolute change).
SMALL_CHANGE = 0.1


def _checked_rows(study: Dict) -> Dict[str, Dict]:
    """The ablation's rows by factor; ValueError where a measured item's sign
    contradicts its advice."""
    rows = {row['factor']: row for row in ablation_rows(study)}
    for item in CHECKLIST:
        for factor in item.factors:
            change = rows[factor]['change']
            if change is not None and change * item.direction <= 0:
                raise ValueError(
                    f'the records contradict the checklist item {item.title!r}: {factor} changed '
                    f'GHM\'s share of FL\'s mAP by {change:+.2f}, the advice expects '
                    f'{"a rise" if item.direction > 0 else "a fall"}; rewrite the item '
                    '(mmdet_ghm/study/checklist.py)')
    return rows


def _with_docs(advice: str, docs: str) -> str:
    return advice.replace('{docs}/', '' if docs == '.' else f'{docs}/')


def render_checklist(study: Dict, results: str = 'docs/results') -> str:
    """The checklist as a numbered Markdown list, the item whose factors moved GHM's
    share most first, then one line naming the factors that moved it less than
    :data:`SMALL_CHANGE`. ``results`` is the path from the page to ``docs/results``."""
    rows = _checked_rows(study)
    docs = posixpath.normpath(posixpath.join(results, '..'))

    def strength(item):
        changes = [abs(rows[f]['change']) for f in item.factors if rows[f]['change'] is not None]
        return max(changes, default=-1.0)

    lines: List[str] = []
    for number, item in enumerate(sorted(CHECKLIST, key=strength, reverse=True), 1):
        measured = [f'`{f}`, {rows[f]["what"]}: {describe_change(rows[f], results)}'
                    for f in item.factors if rows[f]['change'] is not None]
        evidence = ('On the tree crowns (GHM\'s share of FL\'s mAP against the corrected '
                    'cell\'s, on the same seeds): ' + '; '.join(measured) + '.'
                    ) if measured else 'Not measured yet.'
        lines.append(f'{number}. **{item.title}.** {_with_docs(item.advice, docs)} {evidence}')
    in_items = {f for item in CHECKLIST for f in item.factors}
    small = [r for f, r in rows.items() if f not in in_items and r['both']
             and r['change'] is not None and abs(r['change']) < SMALL_CHANGE]
    if small:
        listed = ', '.join(f'`{r["factor"]}` {r["change"]:+.2f}' for r in small)
        lines.append(f'{len(CHECKLIST) + 1}. **The rest matter less here.** The other set-up '
                     f'choices measured moved GHM\'s share by less than {SMALL_CHANGE:.2f} '
                     f'({listed}); keep them the same for every loss you compare, as '
                     '`tools/compare_losses.py` does.')
    return '\n'.join(lines)
