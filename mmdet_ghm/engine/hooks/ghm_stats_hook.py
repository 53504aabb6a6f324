"""Log the GHM losses' gradient-density statistics during training."""
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmdet_ghm.losses.ghm_c import GHMCLoss
from mmdet_ghm.losses.harmonized_loss import HarmonizedLoss

from .logging_window import check_interval, is_window_end, logger_interval
from .model_access import unwrap_model

#: Summary statistics written to the text log (per GHM loss module).
SUMMARY_KEYS = ('regions', 'easy_frac', 'w_easy', 'w_hard')
#: Further summary scalars, from :meth:`HarmonizedLoss.region_summary`:
#: the weight share of the regions with g >= 0.5 and the largest weight
#: per element (what ``weight_cap`` bounds and warm-up pulls towards 1).
REGION_SUMMARY_KEYS = {'w_hard_half': 'hard_half_share', 'beta_max': 'beta_max'}
#: The positives' scalars, for the losses that count them (GHM-C,
#: ``HarmonizedLoss.COUNTS_POSITIVES``): their share of the total harmonizing
#: weight and of the elements.
POSITIVE_SUMMARY_KEYS = {'w_pos': 'positive_share', 'pos_frac': 'positive_fraction'}
#: The warning's defaults, measured by the study (docs/study.md, "A warning for
#: the low-AP runs"; ``mmdet_ghm.study.diagnosis``): over the last 10 % of training,
#: GHM-C runs whose weight share of g >= 0.5 stayed at 0.25 or more, or whose
#: easiest region held under 0.8 of the elements (the background not yet
#: dismissed), all ended far below Focal Loss; the others ended close to it.
LATE_FRACTION = 0.1
LATE_HARD_SHARE_THRESHOLD = 0.25
LATE_EASY_FRACTION_THRESHOLD = 0.8
#: How :class:`GHMStatsHook` samples the training iterations (its ``SAMPLING``):
#: every iteration of each logging window, pooled. The study's records say so in
#: ``ghm_stats_sampling`` (:mod:`mmdet_ghm.study.records`).
WINDOW_SAMPLING = 'window'


def shows_low_ap_signature(hard_share: float, easy_fraction: Optional[float],
                           hard_threshold: float = LATE_HARD_SHARE_THRESHOLD,
                           easy_threshold: float = LATE_EASY_FRACTION_THRESHOLD) -> bool:
    """Whether late-training GHM-C statistics show the study's low-AP signature."""
    return hard_share >= hard_threshold or (
        easy_fraction is not None and easy_fraction < easy_threshold)


def find_harmonized_losses(model: torch.nn.Module) -> List[Tuple[str, HarmonizedLoss]]:
    """``(module path, module)`` of every GHM loss in ``model`` (unwrapped)."""
    return [(name, module) for name, module in unwrap_model(model).named_modules()
            if isinstance(module, HarmonizedLoss)]


def short_names(paths: Sequence[str]) -> Dict[str, str]:
    """Log names without the word ``loss`` (MMEngine averages keys containing it).

    ``bbox_head.loss_cls`` -> ``cls``; the full path (``loss`` tokens dropped)
    is used when the last components collide.
    """
    def strip(part):
        return '_'.join(t for t in part.split('_') if t and t != 'loss')

    short = {p: strip(p.split('.')[-1]) for p in paths}
    if len(set(short.values())) < len(paths) or not all(short.values()):
        short = {p: '.'.join(s for s in map(strip, p.split('.')) if s) or f'ghm{i}'
                 for i, p in enumerate(paths)}
    return short


def summarize(counts: np.ndarray, weight_share: np.ndarray) -> Dict[str, float]:
    """Summary scalars of one loss module from its region counts and weight shares.

    Returns:
        dict: ``regions`` number of non-empty regions; ``easy_frac`` fraction
        of the counted elements in region 0 (the easiest, smallest ``g``);
        ``w_easy`` share of the total harmonizing weight in region 0;
        ``w_hard`` share in the hardest region, i.e. the last non-empty one
        (largest ``g`` seen); ``hard_region`` its index (-1 when all are
        empty).
    """
    non_empty = np.flatnonzero(counts > 0)
    total = counts.sum()
    hard = int(non_empty[-1]) if non_empty.size else -1
    return dict(
        regions=int(non_empty.size),
        easy_frac=float(counts[0] / total) if total > 0 else 0.0,
        w_easy=float(weight_share[0]),
        w_hard=float(weight_share[hard]) if hard >= 0 else 0.0,
        hard_region=hard)


def low_ap_warning(path: str, share: float, easy: float, n: int, window: float,
                   hard_threshold: float, easy_threshold: float,
                   iters: Optional[int] = None) -> str:
    """The text of :class:`GHMStatsHook`'s warning (``n`` logged windows of ``iters``
    training iterations in all)."""
    signs = []
    if share >= hard_threshold:
        signs.append(f'put {share:.2f} of its weight on examples with g >= 0.5 '
                     f'(threshold {hard_threshold:g})')
    if easy < easy_threshold:
        signs.append(f'had only {easy:.2f} of its elements in the easiest region, i.e. has '
                     f'not learned to dismiss the background (threshold {easy_threshold:g})')

    def plural(k, word):
        return f'{k} {word}' + ('' if k == 1 else 's')
    pooled = f', {plural(iters, "iteration")}' if iters is not None else ''
    return (f'GHMStatsHook: over the last {window:.0%} of training '
            f'({plural(n, "logged window")}{pooled}), {path} ' + ' and '.join(signs)
            + '. In the mmdet-ghm study every GHM-C run with this signature ended far below '
            'Focal Loss (docs/study.md, "A warning for the low-AP runs"). Try '
            'weight_cap=100.0 in GHMCLoss and GHMRLoss or a longer schedule, and compare '
            'with a Focal Loss run.')


@HOOKS.register_module()
class GHMStatsHook(Hook):
    """Log the region histogram and harmonizing weights of every GHM loss.

    The statistics logged at an iteration cover its whole **logging window**:
    every training iteration since the previous logging iteration of the
    same epoch (or since the epoch began), the logging iteration included.
    At the first iteration of each window (the iteration after a logged one,
    and the first iteration of every epoch) the statistics accumulator of
    every :class:`~mmdet_ghm.losses.harmonized_loss.HarmonizedLoss` in the
    model (``GHMCLoss``, ``GHMRLoss``) is zeroed on the device; the losses
    then add the counts and weights of every call (all FPN levels, all
    iterations of the window) to it, and at the window's last iteration the
    pooled statistics are copied to the host in one transfer and logged.
    The other iterations add no host synchronisation.

    A window ends at each of the ``LoggerHook``'s logging iterations and at
    the last iteration of every epoch. The epoch's last, partial window is
    always logged (message hub and visualizer), also when the logger skips
    it (``ignore_last=True`` and more than ``interval`` iterations per
    epoch), so that every training iteration is in exactly one logged
    window: the text log then has no line for it, but the message hub's
    history (which the study's per-epoch ``ghm_stats`` average) and the
    visualizer's files have it. Loss calls between two iterations of a
    window (none in MMDetection's loops, whose validation runs after the
    epoch) would count in it too.

    Pooled over the window means: counts are summed over its iterations;
    weight shares are shares of the window's total harmonizing weight;
    ``beta_max`` is the largest total weight over count of any region, i.e.
    per region the count-weighted mean of its ``beta`` over the calls
    (:meth:`~mmdet_ghm.losses.harmonized_loss.HarmonizedLoss.region_summary`);
    the density is the EMA at the window's end (without momentum: the
    window's counts). ``SAMPLING`` (``'window'``) names this; before it,
    the hook logged the one batch of each logging iteration.

    Logged per loss module (module path ``P``, e.g. ``bbox_head.loss_cls``,
    and short name ``S``, e.g. ``cls``):

    * through the message hub (text log, ``scalars.json``, TensorBoard),
      ``train/ghm_S/regions`` (non-empty regions), ``.../easy_frac``
      (fraction of elements in region 0), ``.../w_easy`` and ``.../w_hard``
      (share of the total harmonizing weight in region 0 and in the hardest
      region: the last non-empty one, i.e. the largest gradient norm seen),
      ``.../w_hard_half`` (share in the regions of ``g >= 0.5``) and
      ``.../beta_max`` (largest weight per element of any region, in units
      of the uniform CE weight), and for GHM-C ``.../w_pos`` (the positives'
      share of the total harmonizing weight) and ``.../pos_frac`` (their
      share of the elements), all pooled over the window;
    * through the visualizer (``scalars.json``, ``ghm_stats.json`` and
      TensorBoard, not the text log), per region ``j``: ``ghm/P/count_j``,
      ``ghm/P/weight_share_j``, ``ghm/P/density_j`` (the EMA density,
      bias-corrected with ``ema_bias_correction``, or the counts without
      momentum), for GHM-C ``ghm/P/pos_count_j`` and
      ``ghm/P/pos_weight_share_j`` (the positives alone), and
      ``ghm/P/hard_region``, and ``ghm/window_iters`` (the
      number of iterations the window pooled); TensorBoard also gets the
      region histogram ``ghm/P/regions``.

    Under distributed training each rank logs its own statistics (rank 0's
    reach the log files).

    At the end of training it warns once per GHM-C module that shows the
    study's low-AP signature, averaged over the logged windows of the last
    ``warn_window`` of training (those whose logging iteration lies in it;
    each window's value pooled as above, the windows' values then averaged
    with equal weight, as the study averages them per epoch): a weight
    share of ``g >= 0.5`` (``w_hard_half``) of ``warn_hard_share`` or more,
    or a fraction of the elements in the easiest region (``easy_frac``)
    under ``warn_easy_fraction``. In the study that signature went with runs far
    below Focal Loss; the warning says what to try.

    Args:
        interval (int, optional): log every ``interval`` training iterations
            and at the end of each epoch: the windows' length.
            Defaults to the ``LoggerHook``'s interval, so the summary
            scalars are fresh whenever the logger prints.
        warn_hard_share (float, optional): the warning's threshold on
            ``w_hard_half``, in (0, 1]; ``None`` switches the warning off.
            Default: the study's.
        warn_easy_fraction (float): the threshold on ``easy_frac``, in
            [0, 1] (0: not used). Default: the study's.
        warn_window (float): share of training, at its end, that the
            warning averages over, in (0, 1].
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) in after_train_iter
    #: What the logged statistics sample (the study's ``ghm_stats_sampling``).
    SAMPLING = WINDOW_SAMPLING

    def __init__(self, interval: Optional[int] = None,
                 warn_hard_share: Optional[float] = LATE_HARD_SHARE_THRESHOLD,
                 warn_easy_fraction: float = LATE_EASY_FRACTION_THRESHOLD,
                 warn_window: float = LATE_FRACTION):
        check_interval(interval)
        if warn_hard_share is not None and not (
                isinstance(warn_hard_share, (int, float)) and 0 < warn_hard_share <= 1):
            raise ValueError('warn_hard_share must be in (0, 1] or None, got '
                             f'{warn_hard_share!r}')
        if not (isinstance(warn_easy_fraction, (int, float)) and 0 <= warn_easy_fraction <= 1):
            raise ValueError('warn_easy_fraction must be in [0, 1], got '
                             f'{warn_easy_fraction!r}')
        if not (isinstance(warn_window, (int, float)) and 0 < warn_window <= 1):
            raise ValueError(f'warn_window must be in (0, 1], got {warn_window!r}')
        self.interval = interval
        self.warn_hard_share = warn_hard_share
        self.warn_easy_fraction = float(warn_easy_fraction)
        self.warn_window = float(warn_window)
        # per GHM-C module: (w_hard_half, easy_frac) of the late logged windows
        self._late: Dict[str, List[Tuple[float, float]]] = {}
        self._late_iters = 0  # the training iterations those windows pooled
        # host-side state of the window: zero the accumulators at the next
        # iteration, and the iterations accumulated since they were zeroed
        self._window_due = True
        self._window_iters = 0
        self.ignore_last = True
        self.losses: List[Tuple[str, HarmonizedLoss]] = []
        self.names: Dict[str, str] = {}
        self._edges: Dict[str, List[float]] = {}

    def before_train(self, runner) -> None:
        """Find the GHM losses and the logging interval."""
        self.interval, self.ignore_last = logger_interval(runner, self.interval)
        self.losses = find_harmonized_losses(runner.model)
        if not self.losses:
            runner.logger.warning('GHMStatsHook: the model has no GHM loss '
                                  '(GHMCLoss/GHMRLoss); nothing will be logged.')
            return
        self.names = short_names([path for path, _ in self.losses])
        pattern = getattr(runner.log_processor, 'mean_pattern', None)
        for path, module in self.losses:
            key = f'ghm_{self.names[path]}/w_easy'
            if pattern is not None and re.search(pattern, key):
                runner.logger.warning(f'GHMStatsHook: log key {key!r} matches the log '
                                      'processor\'s mean_pattern; it will be averaged.')
            self._edges[path] = [min(float(e), 1.0) for e in module.edges.tolist()]
        self._late = {path: [] for path, module in self.losses if isinstance(module, GHMCLoss)}
        self._late_iters = 0
        self._window_due = True
        runner.logger.info('GHMStatsHook: logging ' + ', '.join(
            f'{path} as ghm_{self.names[path]}' for path, _ in self.losses) +
            f' every {self.interval} iterations')

    def before_train_epoch(self, runner) -> None:
        """Start a new window with the epoch."""
        self._window_due = True

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """At the first iteration of a window, zero the accumulators (device ops, no sync)."""
        if not self._window_due:
            return
        for _, module in self.losses:
            module.reset_region_stats()
        self._window_due = False
        self._window_iters = 0

    def is_logging_iter(self, runner, batch_idx: int) -> bool:
        """Whether the ``LoggerHook`` logs this iteration (its rule).

        The hook logs its statistics at :meth:`is_window_end`, which adds the
        epoch's last iteration where the logger skips it.
        """
        if self.every_n_inner_iters(batch_idx, self.interval):
            return True
        return (self.end_of_epoch(runner.train_dataloader, batch_idx)
                and (not self.ignore_last or len(runner.train_dataloader) <= self.interval))

    def is_window_end(self, runner, batch_idx: int) -> bool:
        """Whether this iteration ends a window: a logging iteration or the epoch's last."""
        return is_window_end(self, runner, batch_idx, self.interval)

    def read_stats(self) -> Dict[str, Dict[str, np.ndarray]]:
        """Statistics of every loss module, copied to the host in one transfer."""
        parts, layouts = [], []
        for _, module in self.losses:
            summary = module.region_summary()
            arrays = ['counts', 'weight_share', 'density']
            scalars = dict(REGION_SUMMARY_KEYS)
            if module.COUNTS_POSITIVES:
                arrays += ['positive_counts', 'positive_weight_share']
                scalars.update(POSITIVE_SUMMARY_KEYS)
            parts += [summary[key].double() for key in arrays]
            parts += [summary[key].double().reshape(1) for key in scalars.values()]
            layouts.append((module.bins, arrays, list(scalars)))
        host = torch.cat(parts).cpu().numpy()
        out, start = {}, 0
        for (path, _), (bins, arrays, scalars) in zip(self.losses, layouts):
            out[path] = {}
            for key in arrays:
                out[path][key] = host[start:start + bins]
                start += bins
            for key in scalars:
                out[path][key] = float(host[start])
                start += 1
        return out

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """At the end of a window, log its statistics and start the next window."""
        if not self.losses:
            return
        self._window_iters += 1
        if not self.is_window_end(runner, batch_idx):
            return
        self._window_due = True
        step = runner.iter + 1
        late = step > (1 - self.warn_window) * runner.max_iters
        if late:
            self._late_iters += self._window_iters
        per_region = {'ghm/window_iters': self._window_iters}
        for path, stats in self.read_stats().items():
            summary = summarize(stats['counts'], stats['weight_share'])
            if late and path in self._late:
                self._late[path].append((stats['w_hard_half'], summary['easy_frac']))
            name = self.names[path]
            for key in SUMMARY_KEYS:
                runner.message_hub.update_scalar(f'train/ghm_{name}/{key}', summary[key])
            for key in (*REGION_SUMMARY_KEYS, *POSITIVE_SUMMARY_KEYS):
                if key in stats:
                    runner.message_hub.update_scalar(f'train/ghm_{name}/{key}', stats[key])
            per_region[f'ghm/{path}/hard_region'] = summary['hard_region']
            for field, key in (('count', 'counts'), ('weight_share', 'weight_share'),
                               ('density', 'density'), ('pos_count', 'positive_counts'),
                               ('pos_weight_share', 'positive_weight_share')):
                for j, value in enumerate(stats.get(key, ())):
                    per_region[f'ghm/{path}/{field}_{j:02d}'] = float(value)
            self._add_tensorboard_histogram(runner, path, stats['counts'], step)
        runner.visualizer.add_scalars(per_region, step=step, file_path='ghm_stats.json')

    def after_train(self, runner) -> None:
        """Warn once per GHM-C module that ends training with the low-AP signature."""
        if self.warn_hard_share is None:
            return
        for path, late in self._late.items():
            if not late:
                continue
            share, easy = (float(v) for v in np.mean(late, axis=0))
            if shows_low_ap_signature(share, easy, self.warn_hard_share,
                                      self.warn_easy_fraction):
                runner.logger.warning(low_ap_warning(
                    path, share, easy, len(late), self.warn_window, self.warn_hard_share,
                    self.warn_easy_fraction, self._late_iters))

    def _add_tensorboard_histogram(self, runner, path: str, counts: np.ndarray,
                                   step: int) -> None:
        """Region histogram to every TensorBoard backend (others have none)."""
        from mmengine.visualization import TensorboardVisBackend
        backends = [b for b in getattr(runner.visualizer, '_vis_backends', {}).values()
                    if isinstance(b, TensorboardVisBackend)]
        non_empty = np.flatnonzero(counts > 0)
        if not backends or not non_empty.size:
            return
        edges = np.asarray(self._edges[path])
        centers = (edges[:-1] + edges[1:]) / 2
        for backend in backends:
            backend.experiment.add_histogram_raw(
                f'ghm/{path}/regions', min=float(edges[non_empty[0]]),
                max=float(edges[non_empty[-1] + 1]), num=int(counts.sum()),
                sum=float((counts * centers).sum()),
                sum_squares=float((counts * centers**2).sum()),
                bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(),
                global_step=step)
