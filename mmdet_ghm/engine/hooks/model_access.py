"""Reach the model under MMEngine's and torch's distributed wrappers."""
import torch
from mmengine.model import is_model_wrapper


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model.module`` for an MMEngine model wrapper or a torch
    ``DistributedDataParallel``, else ``model`` itself."""
    if is_model_wrapper(model) or isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module
    return model
