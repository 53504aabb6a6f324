"""The named variants of the study: a data set, a recipe, a config plus overrides.

A variant is one training run's settings: the data set (``shapes``, the
synthetic set, or ``crowns``, the real tree-crown images), the recipe
(``adamw`` or ``sgd``, :mod:`.recipes`), a config file (relative to the
repository), MMEngine ``merge_from_dict`` overrides, the train split's outlier
rates (synthetic set only) and the number of epochs. Seeds are not part of a
variant; the runner trains each variant once per seed.

Names: the loss setting, prefixed by the data set unless it is ``shapes`` and
by the recipe unless it is ``adamw`` (``fl``, ``sgd-fl``, ``crowns-sgd-ghm``).
Grids of another network or initialisation (:data:`REGIMES`) put theirs in
front: ``lite0-pretrained-crowns-sgd-ghm`` is the ImageNet-pretrained
EfficientNet-Lite0, ``lite0-scratch-crowns-fl`` the same network from scratch.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .recipes import DEFAULT_EPOCHS, recipe_overrides, sgd_warmup_iters

SYNTHETIC = 'configs/synthetic/retinanet_tiny-r18_fpn_{}_synthetic-shapes.py'
CROWNS = 'configs/tree_crowns/retinanet_tiny-r18_fpn_{}_tree-crowns.py'
DATASETS = ('shapes', 'crowns')
#: The ``dataset`` of a variant that trains on its config's own data, untouched
#: (``tools/compare_losses.py``: a user's config).
CONFIG_DATA = 'config'
#: Epochs per data set and recipe (the crowns set is ~6x smaller per epoch).
EPOCHS = dict(shapes=DEFAULT_EPOCHS, crowns=dict(adamw=60, sgd=120))
# (the SGD step recipe needs 120 epochs on the synthetic set and on the crowns,
# where FL reached 0.016 mAP at 60 epochs, 0.033 at 120 and 0.038 at 240:
# docs/study.md, recipe check)
#: Training iterations per epoch at batch 16: 800 synthetic images; 134 tiles.
ITERS_PER_EPOCH = dict(shapes=50, crowns=9)

LITE0 = 'configs/{}/retinanet_efficientnet-lite0{}_fpn_{{}}_{}.py'
#: What every variant name of the EfficientNet-Lite0 RetinaNet starts with
#: (its two regimes below and the fine-tuning checks).
LITE0_PREFIX = 'lite0-'
#: Fine-tuning epochs of the pretrained EfficientNet-Lite0 (the configs' own;
#: chosen from FL's validation curve, docs/pretrained_backbone.md).
PRETRAINED_EPOCHS = dict(shapes=dict(adamw=24, sgd=24), crowns=dict(adamw=48, sgd=48))
#: The networks and initialisations a grid is trained in: name prefix, label
#: tag, config template per data set, epochs per data set and recipe. ``tiny``
#: is the study's from-scratch ResNet-18 layout; ``lite0-scratch`` is the
#: control of ``lite0-pretrained`` (same network, no ImageNet weights,
#: trainable BN statistics), trained as long as the from-scratch grid.
REGIMES = {
    'tiny': dict(prefix='', tag='', configs=dict(shapes=SYNTHETIC, crowns=CROWNS),
                 epochs=EPOCHS),
    'lite0-pretrained': dict(
        prefix=f'{LITE0_PREFIX}pretrained-', tag='EfficientNet-Lite0 ImageNet, ',
        configs=dict(shapes=LITE0.format('synthetic', '', 'synthetic-shapes'),
                     crowns=LITE0.format('tree_crowns', '', 'tree-crowns')),
        epochs=PRETRAINED_EPOCHS),
    'lite0-scratch': dict(
        prefix=f'{LITE0_PREFIX}scratch-', tag='EfficientNet-Lite0 from scratch, ',
        configs=dict(crowns=LITE0.format('tree_crowns', '-scratch', 'tree-crowns')),
        epochs=EPOCHS),
    # issue 35: the pretrained crowns cells with nothing but the loss differing
    # between the losses of a cell (CORRECTED_CROWNS)
    'lite0-corrected': dict(
        prefix=f'{LITE0_PREFIX}corrected-', tag='EfficientNet-Lite0 ImageNet, corrected, ',
        configs=dict(crowns=LITE0.format('tree_crowns', '', 'tree-crowns')),
        epochs=PRETRAINED_EPOCHS),
}

#: The corrected tree-crowns set-up (issue 35), on top of a recipe. Clipping:
#: every loss of a cell clips the gradient at norm 35, as MMDetection's
#: RetinaNet 1x recipe does (the SGD recipe here already clips every loss; with
#: AdamW only the GHM configs clipped). Ignored crowns: the border-cut crowns
#: (``iscrowd=1``, loaded with ``ignore_flag=1``, about a fifth of the train
#: annotations) are ignored by the assigner (an anchor whose IoF with one is
#: 0.5 or more is neither positive nor negative), instead of training the
#: anchors on them as background.
IGNORE_CROWDS = {'model.train_cfg.assigner.ignore_iof_thr': 0.5}
CLIP_35 = {'optim_wrapper.clip_grad': dict(max_norm=35, norm_type=2)}
CORRECTED_CROWNS = dict(adamw=dict(CLIP_35, **IGNORE_CROWDS), sgd=dict(IGNORE_CROWDS))

# The published GHM-R settings (MMDetection's configs/ghm), reused by the
# ablations that pair GHM-R with another classification loss.
GHM_R = dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
             loss_weight=10.0)
L1 = dict(_delete_=True, type='L1Loss', loss_weight=1.0)


@dataclass(frozen=True)
class Variant:
    """One training recipe of the study.

    Args:
        name: short key (``ghm``, ``fl-noise0``, ...).
        label: what a table calls it.
        config: config path relative to the repository.
        overrides: ``Config.merge_from_dict`` overrides (``_delete_`` works).
        noise: outlier rate of each kind in the train split (wrong labels,
            missing labels, misplaced boxes); ``None``: the set's default (1 %).
        epochs: training epochs; ``None``: the config's (30).
        group: the table / plot panel the variant belongs to.
        dataset: ``shapes``, ``crowns`` or ``config`` (the config's own data).
        recipe: ``adamw`` or ``sgd`` (its overrides are part of ``overrides``).
    """

    name: str
    label: str
    config: str
    overrides: Dict = field(default_factory=dict)
    noise: Optional[float] = None
    epochs: Optional[int] = None
    group: str = 'main'
    dataset: str = 'shapes'
    recipe: str = 'adamw'

    def __post_init__(self):
        if self.dataset not in DATASETS + (CONFIG_DATA,):
            raise ValueError(f'variant {self.name!r}: unknown dataset {self.dataset!r}; '
                             f'known: {", ".join(DATASETS + (CONFIG_DATA,))}')
        if self.noise is not None and self.dataset != 'shapes':
            raise ValueError(f'variant {self.name!r}: noise is a setting of the synthetic '
                             f'set only, got noise={self.noise} on {self.dataset!r}')

    def describe(self) -> dict:
        """JSON-ready description (what a record and ``study.json`` store)."""
        return dict(name=self.name, label=self.label, config=self.config,
                    overrides=self.overrides, noise=self.noise, epochs=self.epochs,
                    group=self.group, dataset=self.dataset, recipe=self.recipe)


#: The loss settings every data set x recipe cell of the grid trains:
#: (key, label, config name, overrides).
LOSSES = (('ce', 'CE + L1', 'ce', {}),
          ('fl', 'FL + L1', 'fl', {}),
          ('ghm', 'GHM-C + GHM-R (published)', 'ghm', {}),
          ('ghm-cap', 'GHM-C + GHM-R, weight cap 100', 'ghm-cap', {}))
#: The hooks of a GHM config (statistics, exact resume), for a variant that
#: puts a GHM loss into a config without them.
GHM_HOOKS = [dict(type='GHMStatsHook'), dict(type='RNGStateHook')]
#: GHM's two halves, each beside the other half's baseline (as ``LOSSES``).
HALVES = (('ghmc-l1', 'GHM-C + L1', 'ghm', {'model.bbox_head.loss_bbox': L1}),
          ('fl-ghmr', 'FL + GHM-R', 'fl', {'model.bbox_head.loss_bbox': GHM_R,
                                           'custom_hooks': GHM_HOOKS}))
#: The weight caps of the sweep (100 is ``ghm-cap``, none is ``ghm``).
CAP_SWEEP = (10.0, 30.0, 300.0)


def cap_overrides(cap: float) -> Dict:
    """Set GHM-C's and GHM-R's ``weight_cap`` (both losses, as ``ghm-cap``)."""
    return {'model.bbox_head.loss_cls.weight_cap': cap,
            'model.bbox_head.loss_bbox.weight_cap': cap}


#: The cap sweep's loss settings, in the form of :data:`LOSSES`.
CAP_SWEEP_LOSSES = tuple((f'ghm-cap{cap:g}', f'GHM-C + GHM-R, weight cap {cap:g}', 'ghm-cap',
                          cap_overrides(cap)) for cap in CAP_SWEEP)


#: The crowns train pipeline without its scale jitter and random crop (the
#: rest as ``configs/_base_/datasets/tree_crowns.py``).
CROWNS_PIPELINE_NO_JITTER = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PhotoMetricDistortion', brightness_delta=24, contrast_range=(0.8, 1.2),
         saturation_range=(0.8, 1.2), hue_delta=8),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs')]
#: The factor ablation on the tree crowns (issue 35): one set-up factor at a
#: time away from the corrected AdamW set-up, each for FL and published GHM.
#: key -> (what the label says, overrides, epochs or None for the cell's).
ABLATION_FACTORS = {
    'anchors3': ('anchors twice as large (octave_base_scale 3: 24-38 px on P3)',
                 {'model.bbox_head.anchor_generator.octave_base_scale': 3.0}, None),
    # what tools/analysis_tools/anchor_coverage.py suggests for the crowns
    'anchors2': ('anchors a third larger (octave_base_scale 2: 16-25 px on P3)',
                 {'model.bbox_head.anchor_generator.octave_base_scale': 2.0}, None),
    # more positives per crown on the same anchors (the ignore band kept 0.1 wide):
    # tests whether the number of positives, not the anchors' size, is what GHM needs
    'assigner-0.4': ('positives from IoU 0.4, negatives below 0.3',
                     {'model.train_cfg.assigner.pos_iou_thr': 0.4,
                      'model.train_cfg.assigner.neg_iou_thr': 0.3}, None),
    'p3-p7': ('five FPN levels, P3-P7',
              {'model.neck.num_outs': 5, 'model.neck.add_extra_convs': 'on_input',
               'model.bbox_head.anchor_generator.strides': [8, 16, 32, 64, 128]}, None),
    'no-jitter': ('no scale jitter or random crop',
                  {'train_dataloader.dataset.pipeline': CROWNS_PIPELINE_NO_JITTER}, None),
    'batch8': ('batch 8', {'train_dataloader.batch_size': 8}, None),
    '96e': ('96 epochs', {}, 96),
    'crowds-as-background': ('border-cut crowns trained as background',
                             {'model.train_cfg.assigner.ignore_iof_thr': -1}, None),
    'no-clip': ('no gradient clipping', {'optim_wrapper.clip_grad': None}, None),
}
#: GHM-side factors of the ablation (published GHM only).
GHM_ABLATION_FACTORS = {
    'momentum0': ('no momentum', {'model.bbox_head.loss_cls.momentum': 0.0,
                                  'model.bbox_head.loss_bbox.momentum': 0.0}, None),
    'cls-bins10': ('GHM-C with 10 regions', {'model.bbox_head.loss_cls.bins': 10}, None),
}


#: The fair grid's candidate set-ups beside the corrected one (issue 35,
#: :mod:`mmdet_ghm.study.fair_grid`): ``{set-up name: ablation factors}``, as the
#: grid's rule decides them from the ablation's records (a test checks that they
#: agree). Decided on 2026-12-07 once every set-up factor had seeds 0-1: FL's
#: qualifying factors (anchors3, assigner-0.4; anchors2 gains less than anchors3)
#: and GHM's (anchors3, 96e, crowds-as-background).
FAIR_SETUPS: Dict[str, Tuple[str, ...]] = {
    'anchors3+assigner-0.4': ('anchors3', 'assigner-0.4'),
    'anchors3+96e+crowds-as-background': ('anchors3', '96e', 'crowds-as-background'),
}
#: The name of the corrected set-up among the fair grid's candidates.
CORRECTED_SETUP = 'corrected'


def fair_variant_name(setup: str, recipe: str, key: str) -> str:
    """The variant of loss ``key`` on a candidate set-up of the fair grid.

    The corrected set-up's are the corrected cells'; a one-factor set-up's FL and
    published GHM with AdamW are the ablation's own runs (the same config);
    the others are ``lite0-fair-<set-up>-crowns-[sgd-]<key>``.
    """
    recipe_part = '' if recipe == 'adamw' else f'{recipe}-'
    if setup == CORRECTED_SETUP:
        return f'{REGIMES["lite0-corrected"]["prefix"]}crowns-{recipe_part}{key}'
    if recipe == 'adamw' and key in ('fl', 'ghm') and setup in ABLATION_FACTORS:
        return f'{LITE0_PREFIX}ablation-crowns-{key}-{setup}'
    return f'{LITE0_PREFIX}fair-{setup}-crowns-{recipe_part}{key}'


def grid_variant(dataset: str, recipe: str, key: str, label: str, config_name: str,
                 overrides: Dict, group: str, regime: str = 'tiny',
                 epochs: Optional[int] = None) -> Variant:
    """A variant of a data set x recipe grid (see the module docstring for names).

    ``regime``: a key of :data:`REGIMES` (network and initialisation);
    ``epochs``: instead of the regime's (the recipe's schedule is made for them).
    """
    spec = REGIMES[regime]
    if dataset not in spec['configs']:
        raise ValueError(f'regime {regime!r} has no {dataset!r} configs; it has '
                         f'{", ".join(spec["configs"])}')
    prefix = spec['prefix'] + ('' if dataset == 'shapes' else f'{dataset}-') + (
        '' if recipe == 'adamw' else f'{recipe}-')
    epochs = epochs or spec['epochs'][dataset][recipe]
    warmup = sgd_warmup_iters(epochs * ITERS_PER_EPOCH[dataset])
    config = spec['configs'][dataset].format(config_name)
    where = f'{"synthetic shapes" if dataset == "shapes" else "tree crowns"}, {recipe}'
    default = regime == 'tiny' and epochs == DEFAULT_EPOCHS['adamw'] and dataset == 'shapes'
    setup = CORRECTED_CROWNS[recipe] if regime == 'lite0-corrected' else {}
    return Variant(prefix + key, f'{label} ({spec["tag"]}{where})', config,
                   # later wins: a set-up factor may change a corrected setting
                   {**recipe_overrides(recipe, epochs, warmup), **setup, **overrides},
                   epochs=None if default else epochs, group=group, dataset=dataset,
                   recipe=recipe)


def fair_variants(setups: Dict[str, Tuple[str, ...]]) -> List[Variant]:
    """The fair grid's variants on ``setups`` (:data:`FAIR_SETUPS`): every loss of
    :data:`LOSSES` in both recipes on the corrected crowns set-up with the set-up's
    ablation factors changed, except those another variant already trains
    (:func:`fair_variant_name`). A factor's epochs replace the cell's, with the
    recipe's schedule made for them."""
    variants = []
    for setup, factors in setups.items():
        unknown = [f for f in factors if f not in ABLATION_FACTORS]
        if unknown or not factors:
            raise ValueError(f'fair set-up {setup!r}: factors must be ablation factors '
                             f'({", ".join(ABLATION_FACTORS)}), got {factors!r}')
        overrides, epochs, what = {}, None, []
        for factor in factors:
            label, factor_overrides, factor_epochs = ABLATION_FACTORS[factor]
            overrides.update(factor_overrides)
            epochs = factor_epochs or epochs
            what.append(label)
        for recipe in ('adamw', 'sgd'):
            for key, label, config_name, loss_overrides in LOSSES:
                name = fair_variant_name(setup, recipe, key)
                if not name.startswith(f'{LITE0_PREFIX}fair-'):
                    continue
                variant = grid_variant('crowns', recipe, key, label, config_name,
                                       dict(overrides, **loss_overrides),
                                       group=f'lite0-fair-crowns-{recipe}',
                                       regime='lite0-corrected', epochs=epochs)
                variants.append(dataclasses.replace(
                    variant, name=name,
                    label=variant.label.replace(f', {recipe})', f', {recipe}, {"; ".join(what)})')))
    return variants


def _variants() -> Tuple[Variant, ...]:
    ghm = SYNTHETIC.format('ghm')
    fl = SYNTHETIC.format('fl')
    base = [
        Variant('ce', 'CE + L1', SYNTHETIC.format('ce')),
        Variant('fl', 'FL + L1', fl),
        Variant('ghm', 'GHM-C + GHM-R (published)', ghm),
        # MMDetection's own GHMC / GHMR with the same settings: the reference row.
        Variant('ghm-ref', 'mmdet GHMC + GHMR (reference)', ghm, {
            'model.bbox_head.loss_cls.type': 'GHMC',
            'model.bbox_head.loss_bbox.type': 'GHMR',
            'custom_hooks': [],
        }),
        Variant('alpha-ce', 'α-balanced CE + L1', SYNTHETIC.format('alpha-ce'), group='families'),
        Variant('cfl', 'continuous FL |y-p|^2·CE + L1', SYNTHETIC.format('cfl'),
                group='families'),
        Variant('ohem', 'OHEM (3:1) + L1', SYNTHETIC.format('ohem'), group='families'),
        Variant('ghmc-l1', 'GHM-C + L1', ghm, {'model.bbox_head.loss_bbox': L1},
                group='halves'),
        Variant('fl-ghmr', 'FL + GHM-R', fl, {'model.bbox_head.loss_bbox': GHM_R},
                group='halves'),
    ]
    for rate, tag in ((0.0, '0'), (0.04, '4')):
        base += [Variant(f'fl-noise{tag}', f'FL + L1, {tag} % outliers', fl, noise=rate,
                         group='noise'),
                 Variant(f'ghm-noise{tag}', f'GHM-C + GHM-R, {tag} % outliers', ghm,
                         noise=rate, group='noise'),
                 Variant(f'ghm-cap-noise{tag}', f'GHM-C + GHM-R, weight cap 100, {tag} % outliers',
                         SYNTHETIC.format('ghm-cap'), noise=rate, group='noise')]
    # GHM options (off in the published settings; see HarmonizedLoss)
    options = (('ghm-debias', 'bias-corrected EMA'), ('ghm-cap', 'weight cap 100'),
               ('ghm-warmup', 'warm-up 500 iterations'))
    base += [Variant(name, f'GHM-C + GHM-R, {what}', SYNTHETIC.format(name), group='options')
             for name, what in options]
    base += [Variant('fl-60e', 'FL + L1, 60 epochs', fl, epochs=60, group='60e'),
             Variant('ghm-60e', 'GHM-C + GHM-R, 60 epochs', ghm, epochs=60, group='60e')]
    base += [Variant(f'{name}-60e', f'GHM-C + GHM-R, {what}, 60 epochs', SYNTHETIC.format(name),
                     epochs=60, group='60e') for name, what in options]
    # Other heads (group 'heads'): FCOS flattens all levels into one loss call,
    # ATSS calls the loss per level as RetinaNet; both keep their IoU / GIoU box
    # losses (GHM-R is for delta regression). Same data, backbone and recipe.
    fcos = 'configs/synthetic/fcos_tiny-r18_fpn_{}_synthetic-shapes.py'
    atss = 'configs/synthetic/atss_tiny-r18_fpn_{}_synthetic-shapes.py'
    base += [
        Variant('fcos-fl', 'FCOS, FL + IoU', fcos.format('fl'), group='heads'),
        Variant('fcos-ghm-flat', 'FCOS, GHM-C flattened (one density over all levels) + IoU',
                fcos.format('ghm-flat'), group='heads'),
        Variant('fcos-ghm', 'FCOS, GHM-C per level + IoU', fcos.format('ghm'), group='heads'),
        Variant('fcos-ghm-cap', 'FCOS, GHM-C per level, weight cap 100 + IoU',
                fcos.format('ghm-cap'), group='heads'),
        Variant('atss-fl', 'ATSS, FL + GIoU', atss.format('fl'), group='heads'),
        Variant('atss-ghm', 'ATSS, GHM-C (per level, as the head calls it) + GIoU',
                atss.format('ghm'), group='heads'),
        Variant('atss-ghm-cap', 'ATSS, GHM-C, weight cap 100 + GIoU', atss.format('ghm-cap'),
                group='heads'),
    ]
    # Data set x recipe (groups 'shapes-sgd', 'crowns-adamw', 'crowns-sgd'; the
    # synthetic set with AdamW is 'main' and 'options' above), the reference row
    # once per data set, and the sweep of the weight cap in every cell ('caps').
    for dataset in DATASETS:
        for recipe in ('adamw', 'sgd'):
            cell = f'{dataset}-{recipe}'
            if cell != 'shapes-adamw':
                base += [grid_variant(dataset, recipe, *loss, group=cell) for loss in LOSSES]
            base += [grid_variant(dataset, recipe, *loss, group='caps')
                     for loss in CAP_SWEEP_LOSSES]
    # Is the stretched 1x schedule long enough from scratch? FL at a quarter
    # and half the study's length (with MMDetection's 500 warm-up iterations,
    # as the grid's 120-epoch runs).
    base += [Variant(f'sgd-fl-{epochs}e', f'FL + L1 (synthetic shapes, sgd, {epochs} epochs)',
                     SYNTHETIC.format('fl'), recipe_overrides('sgd', epochs), epochs=epochs,
                     group='recipe-check', recipe='sgd') for epochs in (30, 60)]
    # Making the tiny model learn the tree crowns with FL before comparing losses
    # (seed 0 each; the chosen settings go into the crowns configs).
    base += [
        Variant('crowns-fl-flips', 'FL + L1 (tree crowns, adamw, flips only)',
                CROWNS.format('fl-flips'), epochs=60, group='crowns-tuning', dataset='crowns'),
        Variant('crowns-fl-flips-120e', 'FL + L1 (tree crowns, adamw, flips only, 120 epochs)',
                CROWNS.format('fl-flips'), epochs=120, group='crowns-tuning', dataset='crowns'),
        Variant('crowns-fl-jitter', 'FL + L1 (tree crowns, adamw, scale and colour jitter)',
                CROWNS.format('fl-jitter'), epochs=60, group='crowns-tuning', dataset='crowns'),
    ]
    # Speed or end point? GHM on the crowns with the AdamW recipe twice as long
    base += [Variant(f'crowns-{key}-120e', f'{label} (tree crowns, adamw, 120 epochs)',
                     CROWNS.format(key), epochs=120, group='crowns-longer', dataset='crowns')
             for key, label in (('fl', 'FL + L1'), ('ghm', 'GHM-C + GHM-R (published)'),
                                ('ghm-cap', 'GHM-C + GHM-R, weight cap 100'))]
    # the SGD step recipe on the crowns at half and twice the grid's length
    # (GHM at 60 epochs: the grid's first length, before the check)
    base += [Variant(f'crowns-sgd-{key}-{epochs}e',
                     f'{label} (tree crowns, sgd, {epochs} epochs)',
                     CROWNS.format(key), recipe_overrides(
                         'sgd', epochs, sgd_warmup_iters(epochs * ITERS_PER_EPOCH['crowns'])),
                     epochs=epochs, group='recipe-check', dataset='crowns', recipe='sgd')
             for key, label, epochs in (('fl', 'FL + L1', 60), ('fl', 'FL + L1', 240),
                                        ('ghm', 'GHM-C + GHM-R (published)', 60))]
    # The pretrained regime (issue 22): every loss of the grid in every data set x
    # recipe cell on the ImageNet-pretrained EfficientNet-Lite0 (groups
    # 'lite0-pretrained-<dataset>-<recipe>', each with its cap sweep), and its
    # control, the same network from scratch, FL and GHM on the crowns with both
    # recipes ('lite0-scratch').
    for dataset in DATASETS:
        for recipe in ('adamw', 'sgd'):
            cell = f'lite0-pretrained-{dataset}-{recipe}'
            base += [grid_variant(dataset, recipe, *loss, regime='lite0-pretrained',
                                  group=cell) for loss in LOSSES]
            # the cap sweep, run (2 seeds) where GHM comes within reach of FL
            base += [grid_variant(dataset, recipe, *loss, regime='lite0-pretrained',
                                  group=cell) for loss in CAP_SWEEP_LOSSES]
    base += [grid_variant('crowns', recipe, *loss, regime='lite0-scratch', group='lite0-scratch')
             for recipe in ('adamw', 'sgd') for loss in LOSSES if loss[0] in ('fl', 'ghm')]
    # What keeping a pretrained crowns run near 20 minutes costs: FL with every
    # backbone stage trainable (BN statistics stay frozen, as MMDetection's R-50
    # configs keep them) against the grid's frozen stem and blocks 0-2.
    fl_crowns = grid_variant('crowns', 'adamw', 'fl', 'FL + L1', 'fl', {},
                             regime='lite0-pretrained', group='lite0-tuning')
    base.append(Variant(f'{LITE0_PREFIX}tuning-crowns-fl-unfrozen',
                        fl_crowns.label.replace(', adamw)', ', adamw, no stage frozen)'),
                        fl_crowns.config, dict(fl_crowns.overrides, **{
                            'model.backbone.frozen_stages': -1}),
                        epochs=fl_crowns.epochs, group='lite0-tuning', dataset='crowns'))
    # Issue 35. The pretrained crowns cells on the corrected set-up
    # (CORRECTED_CROWNS), every loss of the grid and GHM's two halves; and the
    # factor ablation away from its AdamW cell ('lite0-ablation').
    for recipe in ('adamw', 'sgd'):
        base += [grid_variant('crowns', recipe, *loss, regime='lite0-corrected',
                              group=f'lite0-corrected-crowns-{recipe}')
                 for loss in LOSSES + HALVES]
    ablation = [(key, label, factor) for key, label, _, _ in LOSSES if key in ('fl', 'ghm')
                for factor in ABLATION_FACTORS.items()]
    ablation += [('ghm', 'GHM-C + GHM-R (published)', factor)
                 for factor in GHM_ABLATION_FACTORS.items()]
    for key, label, (factor, (what, overrides, epochs)) in ablation:
        cell = next(v for v in base if v.name == f'{LITE0_PREFIX}corrected-crowns-{key}')
        base.append(dataclasses.replace(
            cell, name=f'{LITE0_PREFIX}ablation-crowns-{key}-{factor}',
            label=cell.label.replace(', adamw)', f', adamw, {what})'),
            overrides=dict(cell.overrides, **overrides), epochs=epochs or cell.epochs,
            group='lite0-ablation'))
    base += fair_variants(FAIR_SETUPS)
    base.append(Variant('crowns-ghm-ref', 'mmdet GHMC + GHMR (reference) (tree crowns, adamw)',
                        CROWNS.format('ghm'), {
                            'model.bbox_head.loss_cls.type': 'GHMC',
                            'model.bbox_head.loss_bbox.type': 'GHMR',
                            'custom_hooks': []},
                        epochs=EPOCHS['crowns']['adamw'], group='crowns-adamw',
                        dataset='crowns'))
    return tuple(base)


VARIANTS: Dict[str, Variant] = {v.name: v for v in _variants()}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; ``KeyError`` lists the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f'unknown variant {name!r}; known: {", ".join(VARIANTS)}') from None
