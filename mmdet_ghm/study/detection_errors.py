"""Where GHM's crowns AP is lost: finding the crowns, or placing the boxes (issue 35).

Reads the records of ``tools/analysis_tools/detection_errors_records.py`` kept under
``docs/results/analysis/detection_errors/<variant>-seed<k>-<split>.json``: the AP and
recall of a study run's final checkpoint at several IoU thresholds
(:func:`mmdet_ghm.analysis.detection_errors.ap_and_recall`), on the train split
(through the val pipeline) or the val split. The ``detection-errors`` block sets
each GHM model beside the FL model of the same set-up and seed: if GHM's AP falls
behind FL's at the loose IoU threshold as much as at 0.5, GHM's models fail at
finding and ranking the crowns; if it keeps up at the loose one, at placing boxes.
"""
import posixpath
import re
from typing import Dict, List, Optional, Tuple

from ..analysis.top_box_anchors import ANCHOR_ROLES
from .ablation import cell_name
from .analysis_records import load_analysis_records, provenance, run_fields
from .variants import GHM_ABLATION_FACTORS

#: Where the records are, relative to ``docs/results``.
DETECTION_ERRORS_DIR = 'analysis/detection_errors'
#: The IoU thresholds whose recall and background-free AP the table shows.
SHOWN_THRS = (0.1, 0.5)
#: The kinds of top-scored boxes the table shows (the crowd regions' share is small
#: and ignored by COCO; :func:`~mmdet_ghm.analysis.detection_errors.top_box_kinds`).
TOP_BOX_COLUMNS = ('hit', 'duplicate', 'loose', 'background')
#: A GHM-side crowns variant: its prefix, GHM-side loss and set-up factor (if any).
_GHM_SIDE = re.compile(r'^(.*crowns-(?:sgd-)?)(ghm-cap|ghmc-l1|fl-ghmr|ghm)(?:-(.+))?$')


def load_detection_errors(results_dir: str) -> Dict[str, dict]:
    """``{record name (file stem): record}`` of every detection-errors record."""
    return load_analysis_records(results_dir, DETECTION_ERRORS_DIR)


def fl_partner(variant: str) -> Optional[str]:
    """The FL + L1 variant of a GHM-side crowns variant's set-up (published GHM,
    GHM + cap, GHM-C + L1 or FL + GHM-R), else None:
    ``lite0-ablation-crowns-ghm-anchors2`` -> ``lite0-ablation-crowns-fl-anchors2``,
    ``lite0-corrected-crowns-fl-ghmr`` -> ``lite0-corrected-crowns-fl``; a GHM-side
    factor of the ablation (``...-ghm-momentum0``) -> the corrected cell's FL."""
    match = _GHM_SIDE.match(variant)
    if match is None:
        return None
    prefix, _, factor = match.groups()
    if factor in GHM_ABLATION_FACTORS:
        return cell_name('fl')
    return f'{prefix}fl' + (f'-{factor}' if factor else '')


def errors_record(result: dict, spec: dict, record: str, epochs: int, split: str,
                  num_images: int, code: dict, env: dict) -> dict:
    """The committed record of one run's AP and recall by IoU (``result``: ``ap_and_recall``'s)."""
    return dict(
        run_fields(spec, record, epochs), split=split, num_images=num_images,
        iou_thrs=result['iou_thrs'], ap=result['ap'], recall=result['recall'],
        ap_without_background=result['ap_without_background'],
        top_boxes=result['top_boxes'], background_iou=result['background_iou'],
        num_objects=result['num_objects'], num_detections=result['num_detections'],
        num_background=result['num_background'],
        top_box_anchor_roles=result.get('top_box_anchor_roles'),
        provenance=provenance(code, env, 'tools/analysis_tools/detection_errors_records.py'))


def _key(record: dict) -> Tuple[str, int, str]:
    return record['checkpoint']['variant'], record['checkpoint']['seed'], record['split']


def ghm_fl_pairs(records: Dict[str, dict]
                 ) -> List[Tuple[str, dict, Optional[str], Optional[dict]]]:
    """``(ghm name, ghm record, fl name, fl record)`` for every GHM-side record, in
    name order; the FL partner (same set-up, seed and split) is ``None, None`` where
    it has no record (its checkpoint was not kept)."""
    by_key = {_key(r): name for name, r in records.items()}
    pairs = []
    for name, record in sorted(records.items()):
        variant, seed, split = _key(record)
        partner = fl_partner(variant)
        if partner is None:
            continue
        fl_name = by_key.get((partner, seed, split))
        pairs.append((name, record, fl_name, records[fl_name] if fl_name else None))
    return pairs


def _ratio(a: float, b: float) -> str:
    return f'{a / b:.2f}' if b > 0 else '–'


def _model_cell(results: str, ghm_name: str, ghm: dict, fl_name: Optional[str]) -> str:
    """A row's first cell: the GHM-side model and its FL partner (or why it has none)."""
    variant, seed, _ = _key(ghm)

    def link(name):
        return posixpath.join(results, DETECTION_ERRORS_DIR, f'{name}.json')
    against = (f'against [FL]({link(fl_name)})' if fl_name else
               f'(`{fl_partner(variant)}` has no record)')
    return f'[`{variant}`]({link(ghm_name)}) {against} ({seed})'


def _table_head(columns: List[str]) -> List[str]:
    return ['| GHM-side model against FL (seed): GHM / FL | ' + ' | '.join(columns) + ' |',
            '| --- |' + ' ---: |' * len(columns)]


def _pair(ghm_value: float, fl_value: Optional[float], fmt) -> str:
    """``GHM / FL``, a dash for a missing FL value."""
    return f'{fmt(ghm_value)} / ' + (fmt(fl_value) if fl_value is not None else '–')


def _percent(value: float) -> str:
    return f'{100 * value:.0f} %'


def render_detection_errors_table(records: Dict[str, dict], results: str = 'docs/results',
                                  split: str = 'train') -> str:
    """Markdown table: per GHM-side model of ``split``, its AP at each IoU threshold,
    its recall and its AP without the background boxes at :data:`SHOWN_THRS`, and
    what its top boxes are (:data:`TOP_BOX_COLUMNS`), against the FL model of the same set-up
    and seed (``GHM / FL``), each linking its records."""
    pairs = [p for p in ghm_fl_pairs(records) if p[1]['split'] == split]
    if not pairs:
        return f'_No detection-errors records of the {split} split yet._'
    thrs = pairs[0][1]['iou_thrs']
    if any(r is not None and r['iou_thrs'] != thrs for p in pairs for r in (p[1], p[3])):
        raise ValueError('detection-errors records with different IoU thresholds: '
                         're-measure them with the same --iou-thrs')
    shown = [thrs.index(t) for t in SHOWN_THRS if t in thrs]
    lines = _table_head([f'AP{t:g} (÷)' for t in thrs] + [f'recall{thrs[i]:g}' for i in shown]
                        + [f'AP{thrs[i]:g} without background boxes' for i in shown]
                        + [f'top boxes: {kind}' for kind in TOP_BOX_COLUMNS])
    for ghm_name, ghm, fl_name, fl in pairs:
        def fl_value(key, index):
            return fl[key][index] if fl else None
        cells = [_pair(g, fl_value('ap', i), '{:.3f}'.format)
                 + (f' ({_ratio(g, fl["ap"][i])})' if fl else '')
                 for i, g in enumerate(ghm['ap'])]
        cells += [_pair(ghm['recall'][i], fl_value('recall', i), '{:.2f}'.format)
                  for i in shown]
        cells += [_pair(ghm['ap_without_background'][i], fl_value('ap_without_background', i),
                        '{:.3f}'.format) for i in shown]
        cells += [_pair(ghm['top_boxes'][kind], fl_value('top_boxes', kind), _percent)
                  for kind in TOP_BOX_COLUMNS]
        lines.append(f'| {_model_cell(results, ghm_name, ghm, fl_name)} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _role_shares(roles: Optional[dict]) -> Optional[Dict[str, float]]:
    """Shares of the top boxes by anchor role, and of the loose ones from negatives."""
    if not roles:
        return None
    total = sum(sum(r.values()) for r in roles.values())
    by_role = {role: sum(r[role] for r in roles.values()) / total if total else float('nan')
               for role in ANCHOR_ROLES}
    loose = sum(roles['loose'].values())
    by_role['loose_negative'] = roles['loose']['negative'] / loose if loose else float('nan')
    return by_role


def render_anchor_roles_table(records: Dict[str, dict], results: str = 'docs/results',
                              split: str = 'train') -> str:
    """Markdown table: per GHM-side model of ``split``, which anchors its top boxes come
    from (the head's assigner on the image's ground truth), against FL's of the same
    set-up and seed; records without the anchors' roles are left out."""
    pairs = [p for p in ghm_fl_pairs(records)
             if p[1]['split'] == split and p[1].get('top_box_anchor_roles')]
    if not pairs:
        return f'_No detection-errors records of the {split} split with anchor roles yet._'
    lines = _table_head([f'top boxes from {role} anchors' for role in ANCHOR_ROLES]
                        + ['loose top boxes from negative anchors'])
    for ghm_name, ghm, fl_name, fl in pairs:
        g = _role_shares(ghm['top_box_anchor_roles'])
        f = _role_shares(fl.get('top_box_anchor_roles')) if fl else None
        cells = [_pair(g[key], f[key] if f else None, _percent)
                 for key in ANCHOR_ROLES + ('loose_negative',)]
        lines.append(f'| {_model_cell(results, ghm_name, ghm, fl_name)} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
