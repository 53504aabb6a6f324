"""FCOS head whose classification loss can see one FPN level at a time."""
from mmdet.models.dense_heads import FCOSHead
from mmdet.registry import MODELS

from .per_level_loss import PerLevelClsLossMixin


@MODELS.register_module()
class GHMFCOSHead(PerLevelClsLossMixin, FCOSHead):
    """``FCOSHead`` with ``cls_loss_per_level`` (default True).

    ``FCOSHead.loss_by_feat`` calls ``loss_cls`` once on the scores of all
    levels and images flattened; with GHM-C that estimates the gradient
    density over all levels at once. With ``cls_loss_per_level=True`` the
    same ``loss_by_feat`` runs, but ``loss_cls`` is called once per level on
    that level's segment (``B * H_l * W_l`` rows, images inside the level)
    and the per-level losses are summed: GHM-C counts its regions per level
    and the levels share its EMA, exactly as RetinaNet's per-level calls
    (see :mod:`mmdet_ghm.models.per_level_loss` for why the head is not
    copied). ``cls_loss_per_level=False`` is ``FCOSHead`` unchanged (the
    flattened density, what ``type='FCOSHead'`` with GHM-C gives).

    Everything else (targets, IoU box loss, centerness, ``avg_factor`` =
    number of positives, which GHM-C ignores) is ``FCOSHead``'s, and the
    state dict is ``FCOSHead``'s: checkpoints load either way.

    Args:
        cls_loss_per_level (bool): see above. Defaults to True.
        *args, **kwargs: the arguments of ``FCOSHead``.
    """
