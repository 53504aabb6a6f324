"""α-balanced sigmoid cross-entropy: the "class-imbalanced CE" baseline of GHM.

For logits ``x`` and targets ``t`` in [0, 1] (one-hot for labels)::

    loss = (alpha * t + (1 - alpha) * (1 - t)) * BCE(sigmoid(x), t)

i.e. ``alpha`` on positives and ``1 - alpha`` on negatives (Lin et al.,
"Focal Loss for Dense Object Detection", ICCV 2017, eq. 2). ``alpha = 0.5``
is plain CE scaled by 1/2.
"""
import numbers
from typing import Optional, Union

import torch.nn.functional as F
from torch import Tensor

from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS

from .ghm_c import binary_targets
from .sigmoid_inputs import SigmoidClassificationLoss, element_weight


def check_alpha(alpha) -> float:
    """``alpha``: a real number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f'alpha must be a number in [0, 1], got {alpha!r}')
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    return float(alpha)


def alpha_balanced_ce(pred: Tensor, target: Tensor, alpha: float) -> Tensor:
    """Element-wise α-balanced sigmoid CE, float32 (float64 for float64 logits).

    Args:
        pred (Tensor): logits ``(N, C)``.
        target (Tensor): labels ``(N,)`` in ``[0, C]`` or targets of
            ``pred``'s shape in [0, 1].
        alpha (float): weight of the positive term, in [0, 1].

    Returns:
        Tensor: ``(N, C)``.
    """
    t = binary_targets(target, pred)
    ce = F.binary_cross_entropy_with_logits(pred.to(t.dtype), t, reduction='none')
    return (alpha * t + (1 - alpha) * (1 - t)) * ce


def alpha_balanced_ce_loss(pred: Tensor,
                           target: Tensor,
                           weight: Optional[Tensor] = None,
                           alpha: float = 0.75,
                           reduction: str = 'mean',
                           avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """α-balanced sigmoid CE, weighted and reduced as MMDetection's losses are.

    Args:
        pred (Tensor): logits ``(N, C)``.
        target (Tensor): labels ``(N,)`` in ``[0, C]`` or targets ``(N, C)``.
        weight (Tensor | None): ``(N,)`` or ``(N, C)`` element weights.
        alpha (float): weight of positives; negatives get ``1 - alpha``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float | Tensor | None): with ``'mean'``, the sum is divided
            by it instead of by the number of elements.

    Returns:
        Tensor: float32 scalar, or ``(N, C)`` for ``'none'``.
    """
    loss = alpha_balanced_ce(pred, target, alpha)
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum() * 0  # keeps the graph connected
    return weight_reduce_loss(loss, element_weight(weight, pred), reduction, avg_factor)


@MODELS.register_module()
class AlphaBalancedCELoss(SigmoidClassificationLoss):
    """α-balanced sigmoid cross-entropy (``alpha`` on positives, ``1 - alpha`` on negatives).

    The "class-imbalanced CE" that the GHM paper compares GHM-C with: CE with
    a fixed positive/negative re-weighting and no easy/hard re-weighting.

    The default ``alpha = 0.75`` is the best α for α-balanced CE without a
    focal term in Lin et al. (ICCV 2017), Table 1a (γ = 0). Focal Loss's
    ``alpha = 0.25`` is tuned together with γ = 2, which already
    down-weights the easy negatives; without it, negatives need the smaller
    weight. The seed notes' Keras sketch uses 0.8, close to it.

    Args:
        alpha (float): weight of positive elements, in [0, 1]. Defaults to
            0.75.
        use_sigmoid (bool): must be True. Defaults to True.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'``.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, alpha=0.75, use_sigmoid=True, reduction='mean', loss_weight=1.0):
        super().__init__(use_sigmoid, reduction, loss_weight)
        self.alpha = check_alpha(alpha)

    def compute(self, pred, target, weight, reduction, avg_factor):
        """``avg_factor`` divides the sum for ``'mean'`` (RetinaNet: positive anchors)."""
        return alpha_balanced_ce_loss(pred, target, weight, self.alpha, reduction, avg_factor)

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, loss_weight={self.loss_weight}, '
                f'reduction={self.reduction!r}')
