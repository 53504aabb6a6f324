"""tools/analysis_tools/gradient_split_records.py: refuses what it cannot measure, by name."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'gradient_split_records.py')
    spec = importlib.util.spec_from_file_location('gradient_split_records', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_without_a_record_is_refused_by_name(tmp_path):
    tool = load_tool()
    record = r'docs/results/runs/lite0-corrected-crowns-ce/seed7\.json'
    with pytest.raises(SystemExit, match=rf'lite0-corrected-crowns-ce seed 7: no record {record}'):
        tool.main(['--variants', 'lite0-corrected-crowns-ce', '--seeds', '7',
                   '--work-dir', str(tmp_path)])


def test_a_record_without_its_checkpoint_names_the_work_dir(tmp_path):
    tool = load_tool()
    # the corrected FL cell's seed 0 is committed; its checkpoint is not in an empty work dir
    with pytest.raises(SystemExit, match=r'lite0-corrected-crowns-fl seed 0: no attempt '
                                                r'in .*epoch_48\.pth'):
        tool.main(['--variants', 'lite0-corrected-crowns-fl', '--seeds', '0',
                   '--work-dir', str(tmp_path)])
