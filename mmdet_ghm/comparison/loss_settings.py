"""Which loss settings a detector config can be compared with, and how each is swapped in.

The settings themselves (GHM-C, GHM-R, their cap and clipping, FL, CE) are
defined once, in ``configs/_base_/losses/loss_settings.py``, which every GHM
config of this package inherits; :func:`load_definitions` reads that file.
A loss *setting* here is a name the user passes (``ce``, ``fl``, ``ghm``,
``ghm-cap``, or ``own``: the config as it is) and :func:`swap` turns it into
``Config.merge_from_dict`` overrides of one config, the way the package's own
configs do it:

* the classification loss becomes the setting's (sigmoid or softmax as the
  head is);
* GHM-R replaces the box loss only where that is a delta-coded L1-type loss
  (RetinaNet); any other box loss stays, and the returned notes say so;
* FCOS gets ``GHMFCOSHead`` with one density per FPN level for GHM-C;
* every setting gets the same gradient clipping (:func:`clip_overrides`) and
  ``RNGStateHook`` (exact resume); GHM settings add ``GHMStatsHook``.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet_ghm.utils.mim import config_path

#: The file that defines every loss setting (relative to ``configs/``).
DEFINITIONS = '_base_/losses/loss_settings.py'
#: Names the user can pass, in the order a report lists them.
SETTINGS = ('own', 'ce', 'fl', 'ghm', 'ghm-cap', 'alpha-ce', 'cfl', 'ohem')
#: What each setting is, for the report.
DESCRIPTIONS = {
    'own': "the config's own losses, unchanged",
    'ce': 'cross-entropy (sigmoid or softmax as the head)',
    'fl': 'Focal Loss (gamma 2, alpha 0.25)',
    'ghm': 'GHM-C + GHM-R, published settings (GHM-C where GHM-R does not apply)',
    'ghm-cap': 'GHM-C + GHM-R, published settings with weight_cap 100',
    'alpha-ce': 'alpha-balanced cross-entropy (alpha 0.75)',
    'cfl': 'continuous focal loss |y - p|^2 CE',
    'ohem': 'OHEM: all positives and the hardest negatives (3 per positive, at least 100)',
}
#: The settings' names in the definitions file (classification loss), sigmoid heads.
SIGMOID_DEFINITION = {'ce': 'ce_sigmoid', 'fl': 'focal', 'ghm': 'ghmc', 'ghm-cap': 'ghmc',
                      'alpha-ce': 'alpha_ce', 'cfl': 'continuous_focal', 'ohem': 'ohem'}
SOFTMAX_DEFINITION = {'ce': 'ce_softmax', 'ghm': 'ghmc_softmax', 'ghm-cap': 'ghmc_softmax'}
FAMILIES = ('alpha-ce', 'cfl', 'ohem')
GHM_SETTINGS = ('ghm', 'ghm-cap')
#: Box losses GHM-R can replace: L1-type losses on delta-coded targets.
L1_TYPE_BOX_LOSSES = ('L1Loss', 'SmoothL1Loss', 'BalancedL1Loss', 'AuthenticSmoothL1Loss',
                      'GHMRLoss', 'GHMR')
#: R-CNN box heads whose softmax classification loss can be swapped.
RCNN_BOX_HEADS = ('BBoxHead', 'ConvFCBBoxHead', 'Shared2FCBBoxHead', 'Shared4Conv1FCBBoxHead')


class UnsupportedConfig(ValueError):
    """The config's head or loss cannot be compared: the message says what is supported."""


@dataclass(frozen=True)
class HeadKind:
    """How the losses of one kind of head are swapped.

    Args:
        name: the head's type as the config names it.
        head_key: the dotted path of the head in the config (``model.bbox_head``).
        sigmoid: sigmoid classification (False: softmax over C + 1 classes).
        settings: the settings that apply to this head.
        why_not: per setting that does not apply, why.
    """

    name: str
    head_key: str
    sigmoid: bool
    settings: Tuple[str, ...]
    why_not: Tuple[Tuple[str, str], ...] = ()


_SIGMOID = ('own', 'ce', 'fl', 'ghm', 'ghm-cap')
_FAMILIES_WHY = tuple((name, 'the loss families are compared on RetinaNet only, as in the '
                       'paper') for name in ('alpha-ce', 'cfl', 'ohem'))
_SOFTMAX = ('own', 'ce', 'ghm', 'ghm-cap')
_SOFTMAX_WHY = (('fl', 'Focal Loss needs a sigmoid classifier; this head is softmax'),
                ) + _FAMILIES_WHY
#: Supported heads by type.
HEAD_KINDS = {
    'RetinaHead': HeadKind('RetinaHead', 'model.bbox_head', True, _SIGMOID + FAMILIES),
    'FCOSHead': HeadKind('FCOSHead', 'model.bbox_head', True, _SIGMOID, _FAMILIES_WHY),
    'GHMFCOSHead': HeadKind('GHMFCOSHead', 'model.bbox_head', True, _SIGMOID, _FAMILIES_WHY),
    'ATSSHead': HeadKind('ATSSHead', 'model.bbox_head', True, _SIGMOID, _FAMILIES_WHY),
    'GFLHead': HeadKind('GFLHead', 'model.bbox_head', True, ('own', 'ghm', 'ghm-cap'), (
        ('ce', 'GFLHead trains its classifier on soft IoU targets, which CrossEntropyLoss '
               'does not take'),
        ('fl', 'GFLHead trains its classifier on soft IoU targets, which FocalLoss does not '
               'take (its own Quality Focal Loss is the soft-target focal loss: "own")'))
        + _FAMILIES_WHY),
    'GHMSSDHead': HeadKind('GHMSSDHead', 'model.bbox_head', False, _SOFTMAX, _SOFTMAX_WHY),
}
for _name in RCNN_BOX_HEADS:
    HEAD_KINDS[_name] = HeadKind(_name, 'model.roi_head.bbox_head', False, _SOFTMAX,
                                 _SOFTMAX_WHY)


def load_definitions() -> Dict:
    """The loss settings file as a plain dict (``ghmc``, ``ghmr``, ``focal``, ...)."""
    from mmengine.config import Config
    return Config.fromfile(config_path(DEFINITIONS)).to_dict()


def config_value(cfg, dotted: str):
    """The value at the dotted path ``dotted`` of ``cfg`` (None where a level is missing)."""
    node = cfg
    for key in dotted.split('.'):
        node = node.get(key) if hasattr(node, 'get') else None
        if node is None:
            return None
    return node


def head_kind(cfg) -> HeadKind:
    """The :class:`HeadKind` of ``cfg``'s detector.

    Raises:
        UnsupportedConfig: the head is not one this package can swap losses in.
    """
    supported = ', '.join(sorted(HEAD_KINDS))
    if config_value(cfg, 'model.roi_head') is not None:
        head = config_value(cfg, 'model.roi_head.bbox_head')
        if not isinstance(head, dict):
            raise UnsupportedConfig(
                'model.roi_head.bbox_head is a list (a cascade of R-CNN heads); only a single '
                f'R-CNN box head is supported. Supported heads: {supported}')
        name = head.get('type')
    else:
        head = config_value(cfg, 'model.bbox_head')
        name = head.get('type') if isinstance(head, dict) else None
        if name == 'SSDHead':
            raise UnsupportedConfig(
                "SSDHead mines hard negatives and has no loss_cls to swap; use GHMSSDHead "
                "(type='GHMSSDHead', with a softmax loss_cls) to compare losses on SSD")
    if name not in HEAD_KINDS:
        raise UnsupportedConfig(f'cannot compare losses on a {name!r} head; supported heads: '
                                f'{supported}')
    kind = HEAD_KINDS[name]
    loss_cls = config_value(cfg, f'{kind.head_key}.loss_cls')
    if not isinstance(loss_cls, dict):
        raise UnsupportedConfig(f'{kind.head_key}.loss_cls is missing in the config')
    if bool(loss_cls.get('use_sigmoid', not kind.sigmoid)) != kind.sigmoid and \
            loss_cls.get('type') != 'QualityFocalLoss':
        raise UnsupportedConfig(
            f'{kind.head_key}.loss_cls has use_sigmoid={loss_cls.get("use_sigmoid")!r}, but '
            f'{name} is compared with {"sigmoid" if kind.sigmoid else "softmax"} losses here')
    return kind


def check_settings(kind: HeadKind, settings: Sequence[str]) -> None:
    """Raise :class:`UnsupportedConfig` naming any setting that is unknown or does not apply."""
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise UnsupportedConfig(f'unknown loss setting(s) {unknown}; known: {", ".join(SETTINGS)}')
    why = dict(kind.why_not)
    wrong = [s for s in settings if s not in kind.settings]
    if wrong:
        reasons = '; '.join(f'{s}: {why.get(s, "not supported on this head")}' for s in wrong)
        raise UnsupportedConfig(f'loss setting(s) {wrong} do not apply to {kind.name} '
                                f'({reasons}); {kind.name} supports: {", ".join(kind.settings)}')


def ghm_r_applies(cfg, kind: HeadKind) -> Tuple[bool, str]:
    """Whether GHM-R can replace the box loss, and the reason either way."""
    head = config_value(cfg, kind.head_key)
    box = (head.get('loss_bbox') or {}).get('type')
    coder = (head.get('bbox_coder') or {}).get('type')
    if kind.head_key != 'model.bbox_head' or kind.name not in ('RetinaHead',):
        return False, (f'GHM-R is not swapped in on {kind.name}: the box loss stays {box} '
                       '(as the package\'s own configs for this head)')
    if coder != 'DeltaXYWHBBoxCoder' or head.get('reg_decoded_bbox', False):
        return False, (f'GHM-R needs delta-coded box targets (DeltaXYWHBBoxCoder, '
                       f'reg_decoded_bbox=False); the box loss stays {box}')
    if box not in L1_TYPE_BOX_LOSSES:
        return False, f'GHM-R replaces L1-type box losses only; the box loss stays {box}'
    return True, f'GHM-R replaces the box loss {box}'


def own_setting(cfg, kind: HeadKind) -> Optional[str]:
    """The named setting the config's classification loss already is, if any."""
    loss = config_value(cfg, f'{kind.head_key}.loss_cls')
    kind_of = {'FocalLoss': 'fl', 'CrossEntropyLoss': 'ce', 'AlphaBalancedCELoss': 'alpha-ce',
               'ContinuousFocalLoss': 'cfl', 'OHEMLoss': 'ohem'}.get(loss.get('type'))
    if loss.get('type') in ('GHMCLoss', 'GHMC'):
        kind_of = 'ghm-cap' if loss.get('weight_cap') else 'ghm'
    return kind_of


def clip_overrides(cfg, clip: Optional[str]) -> Tuple[Dict, str]:
    """One clipping policy for every setting: overrides and what the report says.

    ``clip``: ``None`` keeps the config's ``optim_wrapper.clip_grad`` if it has
    one, else clips at the GHM configs' norm 35; ``'none'`` switches clipping
    off; a number clips at that norm.
    """
    own = config_value(cfg, 'optim_wrapper.clip_grad')
    if clip is None:
        if own:
            return {'optim_wrapper.clip_grad': dict(own)}, f'the config\'s own: {dict(own)}'
        clip_grad = dict(load_definitions()['ghm_clip_grad'])
        return {'optim_wrapper.clip_grad': clip_grad}, (
            f'{clip_grad} for every loss (the GHM configs\' clipping; the config had none)')
    if clip == 'none':
        return {'optim_wrapper.clip_grad': None}, 'none, for every loss'
    try:
        norm = float(clip)
    except ValueError:
        raise ValueError(f'clip must be a positive number or "none", got {clip!r}') from None
    if not norm > 0:
        raise ValueError(f'clip must be a positive number or "none", got {clip!r}')
    return {'optim_wrapper.clip_grad': dict(max_norm=norm, norm_type=2)}, (
        f'max_norm={norm:g}, norm_type=2 for every loss')


def _hooks(cfg, add: Sequence[str], drop: Sequence[str] = ()) -> List[Dict]:
    """The config's ``custom_hooks`` without ``drop``, with ``add`` appended where missing."""
    hooks = [dict(h) for h in (cfg.get('custom_hooks') or []) if h.get('type') not in drop]
    have = {h.get('type') for h in hooks}
    return hooks + [dict(type=name) for name in add if name not in have]


def swap(cfg, setting: str, kind: Optional[HeadKind] = None) -> Tuple[Dict, List[str]]:
    """``merge_from_dict`` overrides that put ``setting`` into ``cfg``, and notes for the report.

    Clipping is not part of it (:func:`clip_overrides` is the same for all).

    Raises:
        UnsupportedConfig: the head or the setting is not supported.
    """
    kind = kind or head_kind(cfg)
    check_settings(kind, [setting])
    if setting == 'own':
        hooks = ['RNGStateHook']
        if own_setting(cfg, kind) in GHM_SETTINGS:
            hooks.insert(0, 'GHMStatsHook')
        return {'custom_hooks': _hooks(cfg, hooks)}, []
    defs = load_definitions()
    key = kind.head_key
    notes = []
    cls = dict(defs[(SIGMOID_DEFINITION if kind.sigmoid else SOFTMAX_DEFINITION)[setting]])
    if setting == 'ghm-cap':
        cls['weight_cap'] = defs['ghm_weight_cap']
    overrides = {f'{key}.loss_cls': dict(_delete_=True, **cls)}
    if setting in GHM_SETTINGS:
        applies, why = ghm_r_applies(cfg, kind)
        notes.append(why)
        if applies:
            box = dict(defs['ghmr'])
            if setting == 'ghm-cap':
                box['weight_cap'] = defs['ghm_weight_cap']
            overrides[f'{key}.loss_bbox'] = dict(_delete_=True, **box)
        if kind.name in ('FCOSHead', 'GHMFCOSHead'):
            overrides[f'{key}.type'] = 'GHMFCOSHead'
            overrides[f'{key}.cls_loss_per_level'] = True
            notes.append('FCOSHead becomes GHMFCOSHead with one GHM-C density per FPN level '
                         '(as configs/ghm/fcos_*_ghmc-1x_coco.py)')
        overrides['custom_hooks'] = _hooks(cfg, ['GHMStatsHook', 'RNGStateHook'])
    else:
        box = (config_value(cfg, key).get('loss_bbox') or {}).get('type')
        if box:
            notes.append(f'the box loss stays {box}')
        overrides['custom_hooks'] = _hooks(cfg, ['RNGStateHook'], drop=['GHMStatsHook'])
    return overrides, notes

