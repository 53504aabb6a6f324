"""Training recipes of the study: optimizer and schedule as config overrides.

``adamw`` is what the synthetic configs train with (``configs/_base_/
schedules/synthetic_adamw_30e.py``: AdamW 2e-3, warm-up, cosine, 30 epochs).
``sgd`` is MMDetection's RetinaNet 1x recipe, as our COCO configs use it
(SGD lr 0.01, momentum 0.9, weight decay 1e-4, gradient clipping at norm 35,
linear warm-up over 500 iterations from 0.001, step decay by 10) stretched
from 12 epochs to ``epochs``: the steps stay at 8/12 and 11/12 of training.
The warm-up keeps its 500 iterations but never takes more than a sixth of
training, so that on a small set the first step does not fall inside it. Both recipes assume MMDetection's
batch of 16 (the study configs' batch).
"""
from typing import Dict, List

RECIPES = ('adamw', 'sgd')
#: Epochs of each recipe in the study (the 1x schedule stretched to converge
#: from scratch: see the recipe check in docs/study.md).
DEFAULT_EPOCHS = dict(adamw=30, sgd=120)


def sgd_step_milestones(epochs: int) -> List[int]:
    """The 1x schedule's steps (epochs 8 and 11 of 12) stretched to ``epochs``."""
    if epochs < 3:
        raise ValueError(f'the SGD step recipe needs at least 3 epochs, got {epochs}')
    return [round(epochs * 8 / 12), round(epochs * 11 / 12)]


def sgd_warmup_iters(total_iters: int) -> int:
    """MMDetection's 500 warm-up iterations, at most a sixth of ``total_iters``."""
    return max(1, min(500, total_iters // 6))


def recipe_overrides(recipe: str, epochs: int, warmup_iters: int = 500) -> Dict:
    """``merge_from_dict`` overrides that switch a study config to ``recipe``.

    ``adamw`` is the configs' own recipe: no overrides (the runner stretches
    its cosine to ``epochs``). ``warmup_iters``: the SGD recipe's linear
    warm-up (see :func:`sgd_warmup_iters`).
    """
    if recipe not in RECIPES:
        raise ValueError(f'unknown recipe {recipe!r}; known: {", ".join(RECIPES)}')
    if recipe == 'adamw':
        return {}
    return {
        'optim_wrapper': dict(
            _delete_=True, type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
            clip_grad=dict(max_norm=35, norm_type=2)),
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
                 end=warmup_iters),
            dict(type='MultiStepLR', begin=0, end=epochs, by_epoch=True,
                 milestones=sgd_step_milestones(epochs), gamma=0.1)],
    }
