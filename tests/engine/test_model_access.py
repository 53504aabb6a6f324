import pytest
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from mmdet_ghm.engine.hooks.model_access import unwrap_model


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "init"}', rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_plain_model_is_returned_as_is():
    model = torch.nn.Linear(2, 1)
    assert unwrap_model(model) is model


@pytest.mark.parametrize('wrapper', [torch.nn.parallel.DistributedDataParallel,
                                     MMDistributedDataParallel])
def test_distributed_wrappers_are_unwrapped(one_process_group, wrapper):
    model = torch.nn.Linear(2, 1)
    wrapped = wrapper(model)
    assert unwrap_model(wrapped) is model
