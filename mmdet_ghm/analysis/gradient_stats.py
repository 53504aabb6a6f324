"""Gradient norms of a RetinaNet-style head and their totals under CE, FL, GHM.

The functional core of ``tools/analysis_tools/analyze_gradient_density.py``:

* :func:`~mmdet_ghm.analysis.head_pass.head_targets` (imported here) runs a model
  on a batch and returns the head's flat outputs with the head's own training
  targets (its assigner and coder);
* :func:`classification_gradient_norms` / :func:`regression_gradient_norms`
  give ``g = |sigmoid(x) - t|`` of every valid (anchor, class) element and
  ``g_r = |d| / sqrt(d^2 + mu^2)`` of every valid positive box coordinate;
* :class:`GradientStats` accumulates, over batches and without keeping the
  elements, a fine histogram of ``g`` and, per GHM region, the sums that give
  each region's total gradient under CE, Focal Loss and GHM-C (and under
  Smooth L1, Authentic Smooth L1 and GHM-R for regression), also split
  between positive (``t = 1``) and negative (``t = 0``) elements.

Per-element gradient norms w.r.t. the logit / the box delta:

* CE: ``g``; FL (``gamma``, ``alpha``): ``alpha_t * g^gamma * (g - gamma *
  (1 - g) * log(1 - g))``; GHM-C: ``beta_j * g`` with ``beta_j = N / (R_j *
  n)`` (``R_j`` elements in region ``j``, ``n`` non-empty regions, ``N`` all
  elements: GHMCLoss's weight without momentum, from the whole data).
* Smooth L1 (``beta``): ``min(|d| / beta, 1)``; ASL1: ``g_r``; GHM-R:
  ``beta_j * g_r``.
"""
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .head_pass import head_targets

from mmdet_ghm.losses.gradient_density import region_edges, region_index

GHMC_LAST_EDGE = 1.0 + 1e-6  # as GHMCLoss
GHMR_LAST_EDGE = 1e3  # as GHMRLoss


def classification_gradient_norms(cls_score: Tensor, labels: Tensor,
                                  label_weights: Tensor) -> Tuple[Tensor, Tensor]:
    """``g = |sigmoid(x) - t|`` of every valid element.

    Args:
        cls_score (Tensor): logits ``(N, C)``.
        labels (Tensor): ``(N,)`` in ``[0, C]``; ``C`` is background.
        label_weights (Tensor): ``(N,)``; rows with weight > 0 count.

    Returns:
        tuple: ``g`` (float32, flat) and a bool tensor marking positive
        targets (``t = 1``), both over the valid rows' ``C`` elements.
    """
    if cls_score.dim() != 2 or labels.shape != cls_score.shape[:1] or \
            label_weights.shape != labels.shape:
        raise ValueError(f'expected cls_score (N, C), labels (N,), label_weights (N,); got '
                         f'{tuple(cls_score.shape)}, {tuple(labels.shape)}, '
                         f'{tuple(label_weights.shape)}')
    valid = label_weights > 0
    score, lab = cls_score[valid].float(), labels[valid]
    positive = lab.unsqueeze(1) == torch.arange(score.shape[1], device=score.device)
    g = (score.sigmoid() - positive.float()).abs()
    return g.reshape(-1), positive.reshape(-1)


def regression_gradient_norms(bbox_pred: Tensor, bbox_targets: Tensor, bbox_weights: Tensor,
                              mu: float = 0.02) -> Tuple[Tensor, Tensor]:
    """``g_r = |d| / sqrt(d^2 + mu^2)`` and ``|d|`` of every valid coordinate.

    Args:
        bbox_pred (Tensor): predicted deltas ``(N, 4)``.
        bbox_targets (Tensor): target deltas ``(N, 4)``.
        bbox_weights (Tensor): ``(N, 4)``; elements with weight > 0 count
            (the positive anchors).
        mu (float): ASL1 parameter, > 0.

    Returns:
        tuple: ``g_r`` and ``|d|``, float32, flat.
    """
    if not mu > 0:
        raise ValueError(f'mu must be > 0, got {mu!r}')
    if bbox_pred.shape != bbox_targets.shape or bbox_weights.shape != bbox_pred.shape:
        raise ValueError(f'bbox_pred, bbox_targets and bbox_weights must have one shape; got '
                         f'{tuple(bbox_pred.shape)}, {tuple(bbox_targets.shape)}, '
                         f'{tuple(bbox_weights.shape)}')
    valid = bbox_weights > 0
    d = (bbox_pred.float() - bbox_targets.float())[valid]
    return d.abs() / torch.sqrt(d * d + mu * mu), d.abs()


def focal_gradient_norm(g: Tensor, gamma: float = 2.0) -> Tensor:
    """``|dFL/dx|`` as a function of ``g`` (without ``alpha``).

    With ``p_t = 1 - g``: ``g^gamma * (g - gamma * (1 - g) * log(1 - g))``.
    """
    g = g.double()
    one_minus = 1 - g
    log_term = torch.where(one_minus > 0, one_minus * torch.log(one_minus.clamp(min=1e-300)),
                           torch.zeros_like(g))
    return g.pow(gamma) * (g - gamma * log_term)


def focal_element_gradient_norm(g: Tensor, positive: Tensor, gamma: float = 2.0,
                                alpha: float = 0.25) -> Tensor:
    """``|dFL/dx|`` of each element of sigmoid Focal Loss, ``alpha`` included.

    For ``FL = -alpha_t * (1 - p_t)^gamma * log(p_t)`` (MMDetection's and
    torchvision's ``sigmoid_focal_loss`` per element, before reduction) with
    ``p_t = p`` and ``alpha_t = alpha`` for ``t = 1``, ``p_t = 1 - p`` and
    ``alpha_t = 1 - alpha`` for ``t = 0``: ``alpha_t *``
    :func:`focal_gradient_norm` ``(g)``, with ``g = |p - t| = 1 - p_t``.

    Args:
        g (Tensor): ``|sigmoid(x) - t|``, any shape, in [0, 1].
        positive (Tensor): bool, ``g``'s shape: ``t = 1``.
        gamma (float): >= 0.
        alpha (float): in [0, 1].

    Returns:
        Tensor: float64, ``g``'s shape.
    """
    alpha_t = torch.where(positive, alpha, 1 - alpha).double()
    return alpha_t * focal_gradient_norm(g, gamma)


def smooth_l1_gradient_norm(d_abs: Tensor, beta: float = 0.11) -> Tensor:
    """``|dSL1/dd| = min(|d| / beta, 1)``."""
    if not beta > 0:
        raise ValueError(f'beta must be > 0, got {beta!r}')
    return (d_abs.double() / beta).clamp(max=1.0)


def ghm_region_weights(counts: np.ndarray) -> np.ndarray:
    """``beta_j = N / (R_j * n)`` per region, 0 for empty regions."""
    counts = np.asarray(counts, dtype=np.float64)
    non_empty = counts > 0
    n = max(int(non_empty.sum()), 1)
    total = max(counts.sum(), 1.0)
    weights = np.zeros_like(counts)
    weights[non_empty] = total / (counts[non_empty] * n)
    return weights


def _shares(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def _fraction(part: float, whole: float) -> Optional[float]:
    """``part / whole``; ``None`` (JSON ``null``) when ``whole`` is 0."""
    return float(part / whole) if whole > 0 else None


def positive_gradient_split(count: np.ndarray, total_pos: Dict[str, np.ndarray],
                            total_neg: Dict[str, np.ndarray], edges: np.ndarray,
                            num_positive: int, hard_from: float = 0.5) -> Dict:
    """How each loss's classification gradient splits between positives and negatives.

    ``M`` regions, ``K`` losses (the keys, e.g. ``ce``, ``fl``, ``ghmc``).
    ``T^k = sum_j (P^k_j + Q^k_j)`` is loss ``k``'s total gradient norm,
    ``P^k_j`` / ``Q^k_j`` the part of region ``j`` on positive / negative
    elements (``sum |dL/dx|`` without the loss's normaliser: a normaliser
    common to all elements cancels in every share below).

    Args:
        count (np.ndarray): ``(M,)`` elements per region (all targets).
        total_pos (dict): ``{k: (M,)}`` ``P^k_j``.
        total_neg (dict): ``{k: (M,)}`` ``Q^k_j``.
        edges (np.ndarray): ``(M + 1,)`` region edges.
        num_positive (int): positive elements (= positive anchors of a
            one-label-per-anchor head: RetinaNet's ``avg_factor``).
        hard_from (float): lower bound of the "hard" regions: those whose
            lower edge is ``>= hard_from`` (exactly ``g >= 0.5`` for an even
            ``M``).

    Returns:
        dict: ``share_positive`` / ``share_negative`` ``{k: (M,)}``:
        ``P^k_j / T^k`` and ``Q^k_j / T^k`` (they add up to the region's
        ``share``); ``positive_fraction_in_region`` ``{k: (M,)}``:
        ``P^k_j / (P^k_j + Q^k_j)`` (``None`` where that is 0);
        ``gradient_on_positives`` ``{k: {all, easiest_region, hard}}``:
        ``sum_j P^k_j / T^k``, the same over region 0 only (``g < 1/M``) and
        over the hard regions only (``None`` where their total is 0);
        ``hard_from``: the lower edge of the first hard region (``None`` if
        none); ``normalisers`` and ``normalised_total_gradient``
        ``{k: {positive, negative}}``: ``sum_j P^k_j`` and ``sum_j Q^k_j``
        divided by the loss's normaliser as if all analysed images were one
        batch: the number of positive elements for ``ce`` and ``fl``
        (RetinaNet's ``avg_factor``), the number of elements for ``ghmc``
        (``GHMCLoss`` ignores ``avg_factor``; with its weights from all the
        data, this is the gradient norm of ``GHMCLoss(reduction='mean')``
        over all of it).
    """
    edges = np.asarray(edges, dtype=np.float64)
    hard = edges[:-1] >= hard_from
    num_elements = float(np.sum(count))
    normalisers = dict(ce=float(num_positive), fl=float(num_positive), ghmc=num_elements)
    out = dict(share_positive={}, share_negative={}, positive_fraction_in_region={},
               gradient_on_positives={}, hard_from=float(edges[:-1][hard][0]) if hard.any()
               else None, normalisers={}, normalised_total_gradient={})
    for key in total_pos:
        pos, neg = np.asarray(total_pos[key]), np.asarray(total_neg[key])
        both = pos + neg
        total = both.sum()
        out['share_positive'][key] = (pos / total if total > 0 else 0 * pos).tolist()
        out['share_negative'][key] = (neg / total if total > 0 else 0 * neg).tolist()
        out['positive_fraction_in_region'][key] = [_fraction(p, b) for p, b in zip(pos, both)]
        out['gradient_on_positives'][key] = dict(
            all=_fraction(pos.sum(), total), easiest_region=_fraction(pos[0], both[0]),
            hard=_fraction(pos[hard].sum(), both[hard].sum()))
        norm = normalisers.get(key)
        if norm is not None:
            out['normalisers'][key] = norm
            out['normalised_total_gradient'][key] = dict(
                positive=_fraction(pos.sum(), norm), negative=_fraction(neg.sum(), norm))
    return out


class GradientStats:
    """Accumulates gradient-norm statistics over batches.

    Args:
        cls_bins (int): GHM-C regions (the loss's ``bins``). Defaults to 30.
        reg_bins (int): GHM-R regions. Defaults to 10.
        hist_bins (int): bins of the fine histograms of ``g`` and ``g_r``.
            Defaults to 100.
        gamma (float): Focal Loss gamma. Defaults to 2.
        alpha (float): Focal Loss alpha (positives; negatives get
            ``1 - alpha``). Defaults to 0.25.
        mu (float): ASL1 / GHM-R mu. Defaults to 0.02.
        sl1_beta (float): Smooth L1 beta. Defaults to 0.11.
    """

    def __init__(self, cls_bins: int = 30, reg_bins: int = 10, hist_bins: int = 100,
                 gamma: float = 2.0, alpha: float = 0.25, mu: float = 0.02,
                 sl1_beta: float = 0.11):
        for name, value in (('cls_bins', cls_bins), ('reg_bins', reg_bins),
                            ('hist_bins', hist_bins)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 254:
                raise ValueError(f'{name} must be an int in [1, 254], got {value!r}')
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha!r}')
        if not gamma >= 0:
            raise ValueError(f'gamma must be >= 0, got {gamma!r}')
        for name, value in (('mu', mu), ('sl1_beta', sl1_beta)):
            if not value > 0:
                raise ValueError(f'{name} must be > 0, got {value!r}')
        self.cls_bins, self.reg_bins, self.hist_bins = cls_bins, reg_bins, hist_bins
        self.gamma, self.alpha, self.mu, self.sl1_beta = gamma, alpha, mu, sl1_beta
        self.cls_edges = region_edges(cls_bins, GHMC_LAST_EDGE)
        self.reg_edges = region_edges(reg_bins, GHMR_LAST_EDGE)
        self.hist_edges = region_edges(hist_bins, GHMC_LAST_EDGE)
        zeros = lambda n: torch.zeros(n, dtype=torch.float64)  # noqa: E731
        # fine histograms: g of negative / positive targets, g_r
        self.hist_neg, self.hist_pos, self.hist_reg = (zeros(hist_bins), zeros(hist_bins),
                                                       zeros(hist_bins))
        # per GHM-C region: count, sum of g (CE), sum of alpha_t * FL gradient
        self.cls_count, self.cls_sum_g, self.cls_sum_fl = (zeros(cls_bins), zeros(cls_bins),
                                                           zeros(cls_bins))
        # the same per target: row 0 negatives (t = 0), row 1 positives (t = 1)
        self.cls_count_by_target, self.cls_sum_g_by_target, self.cls_sum_fl_by_target = (
            zeros((2, cls_bins)), zeros((2, cls_bins)), zeros((2, cls_bins)))
        # per GHM-R region: count, sum of g_r (ASL1), sum of SL1 gradient
        self.reg_count, self.reg_sum_g, self.reg_sum_sl1 = (zeros(reg_bins), zeros(reg_bins),
                                                            zeros(reg_bins))
        self.num_images = 0

    @staticmethod
    def _sum_by(index: Tensor, values: Tensor, bins: int) -> Tensor:
        out = torch.zeros(bins + 1, dtype=torch.float64, device=index.device)
        out.index_add_(0, index.long(), values.double())
        return out[:bins].cpu()

    @staticmethod
    def _sum_by_target(index: Tensor, positive: Tensor, values: Tensor, bins: int) -> Tensor:
        """``(2, bins)`` sums: row 0 over negatives, row 1 over positives."""
        out = torch.zeros(2 * (bins + 1), dtype=torch.float64, device=index.device)
        out.index_add_(0, index.long() + positive.long() * (bins + 1), values.double())
        return out.reshape(2, bins + 1)[:, :bins].cpu()

    def update_cls(self, g: Tensor, positive: Tensor) -> None:
        """Add classification gradient norms ``g`` with their positive flags."""
        if g.shape != positive.shape:
            raise ValueError(f'g and positive must have one shape, got {tuple(g.shape)} '
                             f'and {tuple(positive.shape)}')
        g = g.float()
        ones = torch.ones_like(g, dtype=torch.float64)
        everything = torch.ones((), dtype=torch.bool, device=g.device)
        fine = region_index(g, everything, self.hist_edges.to(g.device))
        self.hist_pos += self._sum_by(fine[positive], ones[positive], self.hist_bins)
        self.hist_neg += self._sum_by(fine[~positive], ones[~positive], self.hist_bins)
        region = region_index(g, everything, self.cls_edges.to(g.device))
        fl = focal_element_gradient_norm(g, positive, self.gamma, self.alpha)
        self.cls_count += self._sum_by(region, ones, self.cls_bins)
        self.cls_sum_g += self._sum_by(region, g, self.cls_bins)
        self.cls_sum_fl += self._sum_by(region, fl, self.cls_bins)
        bins = self.cls_bins
        self.cls_count_by_target += self._sum_by_target(region, positive, ones, bins)
        self.cls_sum_g_by_target += self._sum_by_target(region, positive, g, bins)
        self.cls_sum_fl_by_target += self._sum_by_target(region, positive, fl, bins)

    def update_reg(self, g_r: Tensor, d_abs: Tensor) -> None:
        """Add regression gradient norms ``g_r`` and ``|d|`` of positive coordinates."""
        if g_r.shape != d_abs.shape:
            raise ValueError(f'g_r and d_abs must have one shape, got {tuple(g_r.shape)} '
                             f'and {tuple(d_abs.shape)}')
        g_r = g_r.float()
        ones = torch.ones_like(g_r, dtype=torch.float64)
        everything = torch.ones((), dtype=torch.bool, device=g_r.device)
        fine = region_index(g_r, everything, self.hist_edges.to(g_r.device))
        self.hist_reg += self._sum_by(fine, ones, self.hist_bins)
        region = region_index(g_r, everything, self.reg_edges.to(g_r.device))
        self.reg_count += self._sum_by(region, ones, self.reg_bins)
        self.reg_sum_g += self._sum_by(region, g_r, self.reg_bins)
        self.reg_sum_sl1 += self._sum_by(region, smooth_l1_gradient_norm(d_abs, self.sl1_beta),
                                         self.reg_bins)

    def result(self) -> Dict:
        """All statistics as plain Python data (JSON-serialisable).

        ``M`` = ``cls_bins``; ``k`` in ``ce``, ``fl``, ``ghmc``. Besides the
        histograms, ``classification`` holds, per region ``j`` (lists of
        ``M``): ``counts``, ``ghm_weights`` ``beta_j``, ``total_gradient[k]``
        (``sum |dL/dx|`` over the region's elements: CE ``g``, FL
        :func:`focal_element_gradient_norm`, GHM-C ``beta_j * g``; no
        normaliser) and ``share[k]`` (of the loss's total); split by target:
        ``counts_positive`` / ``counts_negative``,
        ``total_gradient_positive[k]`` / ``total_gradient_negative[k]``
        (adding up to ``total_gradient[k]``), and the shares of
        :func:`positive_gradient_split` (``share_positive``,
        ``share_negative``, ``positive_fraction_in_region``,
        ``gradient_on_positives``, ``hard_from``, ``normalisers``,
        ``normalised_total_gradient``); and the scalars ``num_elements``,
        ``num_positive``, ``num_negative``. GHM-C's ``beta_j`` is computed
        from all the data seen, as one call of ``GHMCLoss`` without momentum.
        """
        cls_count, reg_count = self.cls_count.numpy(), self.reg_count.numpy()
        beta_c, beta_r = ghm_region_weights(cls_count), ghm_region_weights(reg_count)
        cls_total = dict(ce=self.cls_sum_g.numpy(), fl=self.cls_sum_fl.numpy(),
                         ghmc=beta_c * self.cls_sum_g.numpy())
        reg_total = dict(sl1=self.reg_sum_sl1.numpy(), asl1=self.reg_sum_g.numpy(),
                         ghmr=beta_r * self.reg_sum_g.numpy())
        # row 0 negatives, row 1 positives; GHM-C's weight is the region's, whatever the target
        by_target = dict(ce=self.cls_sum_g_by_target.numpy(),
                         fl=self.cls_sum_fl_by_target.numpy(),
                         ghmc=beta_c * self.cls_sum_g_by_target.numpy())
        count_by_target = self.cls_count_by_target.numpy()
        split = positive_gradient_split(
            cls_count, {k: v[1] for k, v in by_target.items()},
            {k: v[0] for k, v in by_target.items()}, self.cls_edges.double().numpy(),
            int(count_by_target[1].sum()))

        def edges(t, cap=1.0):
            return [min(float(e), cap) for e in t.tolist()]

        return dict(
            num_images=self.num_images,
            params=dict(cls_bins=self.cls_bins, reg_bins=self.reg_bins,
                        hist_bins=self.hist_bins, fl_gamma=self.gamma, fl_alpha=self.alpha,
                        mu=self.mu, sl1_beta=self.sl1_beta),
            histogram=dict(edges=edges(self.hist_edges), cls_negative=self.hist_neg.tolist(),
                           cls_positive=self.hist_pos.tolist(), reg=self.hist_reg.tolist()),
            classification=dict(
                num_elements=int(cls_count.sum()),
                num_positive=int(self.hist_pos.sum()),
                edges=edges(self.cls_edges), counts=cls_count.tolist(),
                ghm_weights=beta_c.tolist(),
                total_gradient={k: v.tolist() for k, v in cls_total.items()},
                share={k: _shares(v).tolist() for k, v in cls_total.items()},
                num_negative=int(count_by_target[0].sum()),
                counts_positive=count_by_target[1].tolist(),
                counts_negative=count_by_target[0].tolist(),
                total_gradient_positive={k: v[1].tolist() for k, v in by_target.items()},
                total_gradient_negative={k: v[0].tolist() for k, v in by_target.items()},
                **split),
            regression=dict(
                num_elements=int(reg_count.sum()),
                edges=edges(self.reg_edges), counts=reg_count.tolist(),
                ghm_weights=beta_r.tolist(),
                total_gradient={k: v.tolist() for k, v in reg_total.items()},
                share={k: _shares(v).tolist() for k, v in reg_total.items()}))


def update_from_batch(stats: GradientStats, model, data: dict,
                      num_images: Optional[int] = None) -> None:
    """Add one batch's gradient norms to ``stats`` (no gradients are computed)."""
    with torch.no_grad():
        out = head_targets(model, data)
    stats.update_cls(*classification_gradient_norms(out['cls_score'], out['labels'],
                                                    out['label_weights']))
    stats.update_reg(*regression_gradient_norms(out['bbox_pred'], out['bbox_targets'],
                                                out['bbox_weights'], stats.mu))
    stats.num_images += num_images if num_images is not None else len(data['data_samples'])
