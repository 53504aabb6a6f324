"""The low-AP signature: late weight share of g >= 0.5 against mAP relative to FL, and its
errors counted separately for window-sampled and older one-batch statistics."""
import pytest

from mmdet_ghm.study.diagnosis import (baseline_key, late_hard_share, render_signature_detail,
                                       render_signature_errors, render_signature_table,
                                       signature_rows)

FL = 'configs/synthetic/retinanet_tiny-r18_fpn_fl_synthetic-shapes.py'
GHM = 'configs/synthetic/retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'
FCOS_FL = 'configs/synthetic/fcos_tiny-r18_fpn_fl_synthetic-shapes.py'


def record(variant, seed, config, mAP, shares=None, epochs=10, easy=None, sampling=None,
           **spec):
    stats = [{'epoch': e + 1, 'cls/w_hard_half': s} for e, s in enumerate(shares or [])]
    if easy is not None:
        for point in stats:
            point['cls/easy_frac'] = easy
    out = dict(variant=variant, seed=seed, bbox_mAP=mAP, epochs=epochs, ghm_stats=stats,
               variant_spec=dict(name=variant, config=config, **spec))
    if sampling is not None:
        out['ghm_stats_sampling'] = sampling
    return out


def test_late_share_is_the_mean_over_the_last_tenth_of_the_epochs():
    r = record('ghm', 0, GHM, 0.4, shares=[0.5] * 8 + [0.3, 0.2], epochs=10)
    assert late_hard_share(r) == pytest.approx(0.2)          # epoch 10 only
    assert late_hard_share(r, fraction=0.2) == pytest.approx(0.25)
    assert late_hard_share(record('fl', 0, FL, 0.6)) is None
    assert late_hard_share(dict(r, ghm_stats=[{'epoch': 10, 'cls/regions': 3}])) is None


def test_each_run_is_compared_with_the_fl_runs_of_its_own_setting():
    records = [
        record('fl', 0, FL, 0.60), record('fl', 1, FL, 0.70),
        record('fcos-fl', 0, FCOS_FL, 0.50),
        record('sgd-fl', 0, FL, 0.40, recipe='sgd',
               overrides={'optim_wrapper': {}, 'param_scheduler': []}),
        record('ghm', 0, GHM, 0.39, shares=[0.3] * 10),
        record('sgd-ghm', 0, GHM, 0.36, shares=[0.1] * 10, recipe='sgd'),
        record('sgd-ghm', 1, GHM, 0.04, shares=[0.1] * 10, easy=0.5, recipe='sgd'),
        # an FL config with a loss override is not a baseline; no baseline: left out
        record('fl-ghmr', 0, FL, 0.1, overrides={'model.bbox_head.loss_bbox': {}}),
        record('ghm-noise4', 0, GHM, 0.2, shares=[0.3] * 10, noise=0.04),
    ]
    assert baseline_key(records[4]['variant_spec'], 10) == ('retinanet_tiny-r18', 'shapes',
                                                            'adamw', None, 10, '{}')
    # another backbone is another setting: its GHM runs are not compared with the tiny FL
    lite0 = dict(records[4]['variant_spec'], config='configs/synthetic/'
                 'retinanet_efficientnet-lite0_fpn_ghm_synthetic-shapes.py')
    assert baseline_key(lite0, 10)[0] == 'retinanet_efficientnet-lite0'
    rows = signature_rows(records)
    assert {r['sampling'] for r in rows} == {'last-batch'}  # no field: the older records
    assert [(r['variant'], r['seed'], r['fl']) for r in rows] == [
        ('ghm', 0, pytest.approx(0.65)), ('sgd-ghm', 0, 0.40), ('sgd-ghm', 1, 0.40)]
    assert [r['ratio'] for r in rows] == [pytest.approx(0.6), pytest.approx(0.9),
                                          pytest.approx(0.1)]
    table = render_signature_table(rows, hard_threshold=0.25, easy_threshold=0.8)
    # the hard share (ghm) or the easy fraction (sgd-ghm seed 1) shows the signature
    assert '| yes | 2 | `ghm`, `sgd-ghm` | 0.35 (0.10 – 0.60) | 2 of 2 |' in table
    assert '| no | 1 | `sgd-ghm` | 0.90 (0.90 – 0.90) | 0 of 1 |' in table
    assert render_signature_table([]) == '_No runs recorded yet._'
    detail = render_signature_detail(rows)
    # worst first; means over seeds; a variant with no easy fraction recorded shows –
    assert detail.splitlines()[2:] == ['| `sgd-ghm` | 2 | 0.10 | 0.50 | 0.50 |',
                                       '| `ghm` | 1 | 0.30 | – | 0.60 |']


def test_a_run_of_another_set_up_is_compared_with_the_fl_runs_of_that_set_up():
    """The corrected crowns cells and their ablation factors change the set-up for every loss
    (clipping, ignored crowns, anchors): each GHM run meets the FL runs of its own set-up."""
    from mmdet_ghm.study.variants import VARIANTS
    names = ('lite0-pretrained-crowns-fl', 'lite0-corrected-crowns-fl',
             'lite0-ablation-crowns-fl-anchors3', 'lite0-pretrained-crowns-ghm',
             'lite0-corrected-crowns-ghm', 'lite0-ablation-crowns-ghm-anchors3',
             'lite0-ablation-crowns-ghm-momentum0', 'lite0-corrected-crowns-ghmc-l1')
    maps = dict(zip(names, (0.09, 0.10, 0.11, 0.03, 0.04, 0.08, 0.05, 0.06)))
    records = [dict(variant=n, seed=0, bbox_mAP=maps[n], epochs=48,
                    ghm_stats=[{'epoch': 48, 'cls/w_hard_half': 0.3}] if '-fl' not in n else [],
                    variant_spec=VARIANTS[n].describe()) for n in names]
    fl_of = {r['variant']: r['fl'] for r in signature_rows(records)}
    assert fl_of == {'lite0-pretrained-crowns-ghm': 0.09, 'lite0-corrected-crowns-ghm': 0.10,
                     'lite0-ablation-crowns-ghm-anchors3': 0.11,
                     # GHM-side factors and GHM-C + L1 change only the loss: the corrected FL
                     'lite0-ablation-crowns-ghm-momentum0': 0.10,
                     'lite0-corrected-crowns-ghmc-l1': 0.10}


def _split_records():
    """FL at 0.5; GHM runs of every kind: a sign (share 0.3) or none (0.1), ended far below
    FL (0.2: ratio 0.4) or not (0.45: 0.9), sampled over windows or one batch (no field)."""
    fl = [record('fl', 0, FL, 0.5)]
    window = [record('ghm', 0, GHM, 0.2, shares=[0.3] * 10, sampling='window'),      # hit
              record('ghm', 1, GHM, 0.45, shares=[0.3] * 10, sampling='window'),     # alarm
              record('ghm-cap', 0, GHM, 0.45, shares=[0.1] * 10, sampling='window'),  # right
              record('ghm-cap10', 0, GHM, 0.2, shares=[0.1] * 10, sampling='window'),  # miss
              record('ghm-cap10', 1, GHM, 0.1, shares=[0.1] * 10, sampling='window')]  # miss
    older = [record('ghm', 2, GHM, 0.1, shares=[0.3] * 10),                           # hit
             record('ghm', 3, GHM, 0.15, shares=[0.1] * 10, easy=0.5),                # hit
             record('ghm-cap', 1, GHM, 0.48, shares=[0.1] * 10),                      # right
             record('ghm-cap', 2, GHM, 0.2, shares=[0.1] * 10)]                       # miss
    mixed = [record('ghm-warmup', 0, GHM, 0.5, shares=[0.3] * 10, sampling='mixed')]  # alarm
    return fl + window + older + mixed


HEAD = ('| statistics logged | runs | with a sign | false alarms: a sign, ended at 85% of FL '
        'or above | without a sign | misses: no sign, ended below 85% of FL |')


def test_errors_are_counted_separately_per_sampling():
    rows = signature_rows(_split_records())
    assert sorted((r['variant'], r['seed'], r['sampling']) for r in rows)[:2] == [
        ('ghm', 0, 'window'), ('ghm', 1, 'window')]
    table = render_signature_errors(rows, hard_threshold=0.25, easy_threshold=0.8)
    assert table.splitlines() == [
        HEAD, '| --- | ---: | ---: | --- | ---: | --- |',
        '| every iteration of each logging window (`window`) | 5 | 2 | 1 of 2: `ghm` | 3 '
        '| 2 of 3: `ghm-cap10` ×2 |',
        '| resumed across the change, epochs of both kinds (`mixed`) | 1 | 1 '
        '| 1 of 1: `ghm-warmup` | 0 | 0 of 0 |',
        '| one batch per logging iteration (older records, no `ghm_stats_sampling`) | 4 | 2 '
        '| 0 of 2 | 2 | 1 of 2: `ghm-cap` |']
    # the thresholds are the caller's: at 0.35 no share is a sign, only the easy fraction
    strict = render_signature_errors(rows, hard_threshold=0.35, easy_threshold=0.8)
    assert ('| every iteration of each logging window (`window`) | 5 | 0 | 0 of 0 | 5 '
            '| 3 of 5: `ghm`, `ghm-cap10` ×2 |') in strict


def test_errors_say_when_no_run_has_window_statistics():
    older = [r for r in _split_records() if 'ghm_stats_sampling' not in r]
    table = render_signature_errors(signature_rows(older))
    lines = table.splitlines()
    assert lines[2] == ('| every iteration of each logging window (`window`) | 0 | – '
                        '| no runs with window statistics recorded yet | – | – |')
    assert lines[3].startswith('| one batch per logging iteration (older records') \
        and '| 4 | 2 | 0 of 2 | 2 | 1 of 2: `ghm-cap` |' in lines[3]
    assert len(lines) == 4  # no mixed row without mixed records
    window_only = [r for r in signature_rows(_split_records()) if r['sampling'] == 'window']
    assert render_signature_errors(window_only).splitlines()[-1] == (
        '| one batch per logging iteration (older records, no `ghm_stats_sampling`) | 0 | – '
        '| no such runs | – | – |')


def test_an_unknown_sampling_is_a_value_error_naming_it():
    records = [record('fl', 0, FL, 0.5),
               record('ghm', 0, GHM, 0.2, shares=[0.3] * 10, sampling='every-batch')]
    with pytest.raises(ValueError, match="'every-batch'"):
        signature_rows(records)
