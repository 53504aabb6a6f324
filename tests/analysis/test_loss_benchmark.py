"""The loss benchmark: inputs, records, the docs/benchmark.md tables generated from them, the CI guard."""
import copy
import importlib.util
import json
import pathlib

import pytest
import torch

from mmdet_ghm.analysis import loss_benchmark as lb
from mmdet_ghm.losses import GHMCLoss

REPO = pathlib.Path(__file__).resolve().parents[2]
RECORDS = REPO / lb.RECORDS_DIR


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO / 'tools' / 'analysis_tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_level_sizes_are_retinanet_anchor_counts():
    # 800x1344, strides 8..128, 9 anchors, 2 images
    assert lb.level_sizes(800, 1344, 2) == [302400, 75600, 18900, 4914, 1386]


def test_plain_bce_is_bce_on_the_one_hot_target():
    levels = lb.classification_inputs([40, 10], 5, 'cpu', torch.Generator().manual_seed(0))
    bce = lb.PlainBCE(levels)
    logits, labels, _, _ = levels[0]
    target = torch.zeros(40, 5)
    for row, label in enumerate(labels.tolist()):
        if label < 5:
            target[row, label] = 1
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert torch.equal(bce(logits, labels), expected)


def test_softmax_inputs_label_background_last():
    (logits, labels, weights, _), = lb.softmax_inputs([300], 4, 'cpu',
                                                    torch.Generator().manual_seed(0))
    assert logits.shape == (300, 5) and labels.max() == 4 and weights.shape == (300,)


def test_eager_kernels_wrapper_runs_the_eager_path(monkeypatch):
    from mmdet_ghm.losses.ghm_c import ghmc_region_index
    monkeypatch.setenv('MMDET_GHM_COMPILE', '1')
    before = dict(ghmc_region_index.calls)
    loss = lb.EagerKernels(GHMCLoss(bins=5))
    loss(torch.randn(8, 3), torch.randint(0, 4, (8,)), torch.ones(8))
    assert ghmc_region_index.calls['eager'] == before.get('eager', 0) + 1
    assert ghmc_region_index.calls['compiled'] == before.get('compiled', 0)
    assert lb.os.environ['MMDET_GHM_COMPILE'] == '1'  # restored


def test_benchmark_group_rows_and_record(tmp_path):
    levels = lb.classification_inputs([60, 20], 4, 'cpu', torch.Generator().manual_seed(0))
    variants = {'BCE': lb.PlainBCE(levels), 'GHMCLoss': lb.EagerKernels(GHMCLoss(bins=5))}
    rows = lb.benchmark_group(variants, levels, 3, torch.device('cpu'), measure_memory=False)
    assert [row['name'] for row in rows] == ['BCE', 'GHMCLoss']
    assert rows[0]['ratio'] == 1.0 and len(rows[1]['rounds_ms']) == 3
    assert rows[1]['ratio'] == pytest.approx(rows[1]['median_ms'] / rows[0]['median_ms'])
    record = lb.make_record({'sigmoid': dict(title='t', variants=rows)},
                            dict(images=1, height=8, width=8, num_classes=4, rounds=3),
                            torch.device('cpu'), note='test')
    assert record['code']['commit'] and record['env']['torch'] == torch.__version__
    assert '/' not in json.dumps(record['env']['machine'])  # no paths
    path = tmp_path / 'r.json'
    lb.write_record(str(path), record)
    with pytest.raises(FileExistsError, match='exists'):
        lb.write_record(str(path), record)


def fake_record(ratio):
    rows = [dict(name='BCE', median_ms=100.0, ratio=1.0, first_call_s=0.1),
            dict(name='GHMCLoss', median_ms=100.0 * ratio, ratio=ratio, first_call_s=20.0,
                 peak_extra_mib=3.0, bytes_per_element=4.5)]
    return dict(name='x', groups={'sigmoid': dict(title='sigmoid', variants=rows)},
                setting=dict(images=2, height=800, width=1344, num_classes=80, rounds=5),
                code=dict(commit='abcdef0123', dirty=False),
                env=dict(date='2026-11-30T00:00:00+00:00', device='cpu', torch='2.13.0',
                         compile='1', machine=dict(cpu='x', cores=2, torch_threads=2)))


def test_render_record_and_change():
    text = lb.render_record(fake_record(0.9))
    assert '| GHMCLoss | 90 | 0.90 | 20.0 | 3.0 | 4.5 |' in text
    assert 'commit `abcdef0`' in text
    before, after = fake_record(1.8), fake_record(0.9)
    before['name'], after['name'] = 'old', 'new'
    assert '| GHMCLoss (× BCE) | 1.80 | 0.90 |' in lb.render_change(before, after)
    middle = fake_record(1.2)
    middle['name'] = 'mid'
    middle['groups']['sigmoid']['variants'].pop()  # a variant the middle record lacks
    three = lb.render_change(before, middle, after)
    assert '| variant | × baseline, `old` | × baseline, `mid` | × baseline, `new` |' in three
    assert '| GHMCLoss (× BCE) | 1.80 | — | 0.90 |' in three


def test_update_benchmark_blocks_regenerates_blocks(tmp_path):
    for name, ratio in (('old', 1.8), ('new', 0.9)):
        (tmp_path / f'{name}.json').write_text(json.dumps(fake_record(ratio)))
    text = ('a\n<!-- benchmark:new:begin -->\nstale\n<!-- benchmark:new:end -->\n'
            '<!-- benchmark:old,new:begin --><!-- benchmark:old,new:end -->\n')
    out = lb.update_benchmark_blocks(text, str(tmp_path))
    assert 'stale' not in out and '| GHMCLoss | 90 | 0.90 |' in out
    assert '| GHMCLoss (× BCE) | 1.80 | 0.90 |' in out
    assert lb.update_benchmark_blocks(out, str(tmp_path)) == out
    with pytest.raises(FileNotFoundError, match='missing'):
        lb.update_benchmark_blocks(
            '<!-- benchmark:missing:begin --><!-- benchmark:missing:end -->', str(tmp_path))


def test_benchmark_page_tables_are_generated_from_the_committed_records():
    page = (REPO / 'docs' / 'benchmark.md').read_text()
    blocks = lb.BLOCK.findall(page)
    assert blocks, 'docs/benchmark.md has no generated benchmark block'
    assert lb.update_benchmark_blocks(page, str(RECORDS)) == page, \
        'docs/benchmark.md tables differ from docs/results/benchmarks: run ' \
        'python tools/analysis_tools/benchmark_losses.py --update-docs'


def test_committed_records_are_complete():
    records = sorted(RECORDS.glob('*.json'))
    assert records
    for path in records:
        record = json.loads(path.read_text())
        assert record['schema'] == lb.SCHEMA and record['code']['commit'], path
        for key in ('torch', 'mmcv', 'mmdet', 'mmengine', 'numpy', 'date', 'machine'):
            assert key in record['env'], (path, key)
        assert '/work' not in path.read_text() and '/root' not in path.read_text(), path
        for group in record['groups'].values():
            assert group['variants'][0]['ratio'] == 1.0


def test_guard_verdict_uses_the_median_round_ratio():
    guard = load_tool('check_loss_speed')
    limits = guard.limits_for('Intel(R) Xeon(R) Processor')
    results = {'GHMCLoss / BCE': dict(ratio=1.0, ratio_of_minima=9.0),
               'GHMRLoss / L1Loss': dict(ratio=9.0, ratio_of_minima=1.0)}
    assert guard.verdict(results, limits) == ['GHMRLoss / L1Loss']
    assert guard.verdict({k: dict(ratio=1, ratio_of_minima=9) for k in results}, limits) == []
    assert guard.round_ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]


def test_guard_limits_are_per_cpu_and_the_loosest_on_an_uncalibrated_one():
    guard = load_tool('check_loss_speed')
    # GHM-R as it is measures about 2.0 on AMD EPYC, above the Intel Xeon limit (1.95).
    assert guard.verdict({'GHMCLoss / BCE': dict(ratio=1.0), 'GHMRLoss / L1Loss': dict(ratio=2.1)},
                         guard.limits_for('Intel(R) Xeon(R) Processor')) == ['GHMRLoss / L1Loss']
    assert guard.verdict({'GHMCLoss / BCE': dict(ratio=1.0), 'GHMRLoss / L1Loss': dict(ratio=2.1)},
                         guard.limits_for('AMD EPYC')) == []
    loosest = guard.limits_for('Some Future CPU @ 9 GHz')
    for name in loosest:
        assert loosest[name] == max(entry['limits'][name]
                                    for entry in guard.CALIBRATED_CPUS.values())
    assert loosest['GHMRLoss / L1Loss'] == 2.84
    assert guard.calibration_path('AMD EPYC') == \
        'docs/results/benchmarks/guard/calibration-amd-epyc.json'
    assert guard.calibration_path('Some Future CPU @ 9 GHz') == \
        'docs/results/benchmarks/guard/calibration-some-future-cpu-9-ghz.json'


@pytest.mark.parametrize('cpu', ['Intel(R) Xeon(R) Processor', 'AMD EPYC'])
def test_guard_limits_sit_between_the_calibration_runs_with_room(cpu):
    # The runs the limits of one CPU were chosen from (tools/analysis_tools/
    # check_loss_speed.py --calibrate, on that CPU): quiet and beside a training run,
    # and with every kernel run twice. Each limit lies between them, at least a
    # quarter of the gap from either side.
    guard = load_tool('check_loss_speed')
    entry = guard.CALIBRATED_CPUS[cpu]
    runs = json.loads((REPO / entry['calibration']).read_text())
    assert runs['env']['machine']['cpu'] == cpu  # measured on the CPU it calibrates
    assert len(runs['quiet']) >= 20 and len(runs['loaded']) >= 10
    assert len(runs['kernels_twice_as_slow']) >= 10
    assert runs['beside']['loaded']  # the job the loaded runs ran beside
    for name, limit in entry['limits'].items():
        normal = [run[name]['ratio'] for run in runs['quiet'] + runs['loaded']]
        slowed = [run[name]['ratio'] for run in runs['kernels_twice_as_slow']]
        gap = min(slowed) - max(normal)
        assert gap > 0, (name, normal, slowed)
        assert max(normal) + gap / 4 <= limit <= min(slowed) - gap / 4, (name, limit, gap)


def test_guard_calibration_table_is_generated_from_the_records():
    guard = load_tool('check_loss_speed')
    records = guard.load_calibrations()
    assert set(records) == set(guard.CALIBRATED_CPUS)
    page = (REPO / guard.DOCS_PAGE).read_text()
    assert '<!-- guard:calibration:begin -->' in page
    assert guard.update_calibration_block(page, records) == page, \
        'python tools/analysis_tools/check_loss_speed.py --update-docs'
    for cpu, entry in guard.CALIBRATED_CPUS.items():
        assert f'| {cpu} | quiet | ' in page
        assert f" | {entry['limits']['GHMRLoss / L1Loss']} | " in page
    with pytest.raises(ValueError, match='no <!-- guard:calibration'):
        guard.update_calibration_block('no block', records)


@pytest.mark.parametrize('argv, message', [
    (['--rounds', '0'], '--rounds must be >= 1, got 0'),
    (['--size', '64', '64'], 'got 2 images of 64 x 64'),
])
def test_benchmark_tool_rejects_bad_arguments(argv, message, monkeypatch, capsys):
    tool = load_tool('benchmark_losses')
    monkeypatch.setattr('sys.argv', ['benchmark_losses.py', '--no-record'] + argv)
    with pytest.raises(SystemExit):
        tool.main()
    assert message in capsys.readouterr().err


def test_record_copy_is_independent():
    # render_* must not mutate the records they are given
    record = fake_record(0.9)
    frozen = copy.deepcopy(record)
    lb.render_record(record)
    assert record == frozen
