"""tools/analysis_tools/detection_errors_records.py: refuses what it cannot measure, by name."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'detection_errors_records.py')
    spec = importlib.util.spec_from_file_location('detection_errors_records', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_without_a_record_is_refused_by_name(tmp_path):
    record = r'docs/results/runs/lite0-corrected-crowns-ce/seed7\.json'
    with pytest.raises(SystemExit, match=rf'lite0-corrected-crowns-ce seed 7: no record {record}'):
        load_tool().main(['--variants', 'lite0-corrected-crowns-ce', '--seeds', '7',
                          '--work-dir', str(tmp_path)])


def test_a_record_without_its_checkpoint_names_the_work_dir(tmp_path):
    with pytest.raises(SystemExit, match=r'lite0-corrected-crowns-fl seed 0: no attempt '
                                                r'in .*epoch_48\.pth'):
        load_tool().main(['--variants', 'lite0-corrected-crowns-fl', '--seeds', '0',
                          '--work-dir', str(tmp_path)])


@pytest.mark.parametrize('option, match', [(['--iou-thrs', '0.5', '0.3'], 'increasing'),
                                           (['--iou-thrs', '1.5'], r'\(0, 1\]'),
                                           (['--max-dets', '0'], 'max-dets must be positive')])
def test_bad_options_are_named(tmp_path, option, match):
    with pytest.raises((SystemExit, ValueError), match=match):
        load_tool().main(['--variants', 'lite0-corrected-crowns-fl', '--work-dir', str(tmp_path)]
                         + option)
