"""Log the share of the classification gradient that goes to the positives, for any loss."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmdet_ghm.analysis.gradient_share import (BACKWARD_FIELDS, FIELDS, FORWARD_FIELDS, HARD_G,
                                               NEGATIVE_G, check_cls_inputs, element_masks,
                                               forward_counts, gradient_sums,
                                               overlapping_negatives, summarize_shares)

from .logging_window import check_interval, is_window_end, logger_interval
from .model_access import unwrap_model

#: The message hub's keys: ``train/cls_grad/<key>`` (no ``loss`` in them, so
#: MMEngine's log processor does not average them again).
LOG_PREFIX = 'train/cls_grad/'
LOGGED_KEYS = ('pos_share', 'pos_frac', 'neg_overlap', 'neg_overlap_share', 'pos_hard')


def find_sigmoid_cls_loss(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """The sigmoid loss module at ``path`` of ``model`` (unwrapped).

    A loss without ``use_sigmoid`` (e.g. mmdet's ``FocalLoss``, sigmoid only)
    counts as sigmoid.

    Raises:
        ValueError: the model has no module at ``path``, or it is a softmax loss.
    """
    try:
        module = unwrap_model(model).get_submodule(path)
    except AttributeError as error:
        raise ValueError(f'ClsGradientShareHook: the model has no module {path!r}') from error
    if getattr(module, 'use_sigmoid', True) is not True:
        raise ValueError(f'ClsGradientShareHook: {path} ({type(module).__name__}) is '
                         'a softmax loss; the hook reads sigmoid (N, C) logits only')
    return module


def sigmoid_cls_loss(model: torch.nn.Module, path: str) -> Optional[torch.nn.Module]:
    """As :func:`find_sigmoid_cls_loss`, ``None`` where it raises (no such module,
    or a softmax loss)."""
    try:
        return find_sigmoid_cls_loss(model, path)
    except ValueError:
        return None


@HOOKS.register_module()
class ClsGradientShareHook(Hook):
    """Log how a head's sigmoid classification loss splits its gradient, over training.

    Whatever the loss (CE, Focal Loss, GHM-C, ...), the hook reads the
    gradient that autograd sends back to the logits of every call of the loss
    module at ``loss`` (a backward hook on its first input; each FPN level's
    call counts) and pools, over each **logging window** (as
    :class:`GHMStatsHook`: every iteration since the previous logging
    iteration of the epoch, the epoch's last partial window included):

    * ``train/cls_grad/pos_share``: the positive (anchor, class) elements'
      share of the summed absolute gradient. With a trained classifier bias
      it settles near one half for any loss (one class; per class with
      more): the bias's gradient is the sum of the signed gradients on its
      logits, zero where the bias has settled, and positives and negatives
      are pushed in opposite directions. It tells losses apart early in
      training; later, how each half is spread does (the keys below);
    * ``train/cls_grad/pos_frac``: their share of the valid elements;
    * ``train/cls_grad/neg_overlap``: the share of the negatives whose
      ``g = p`` is ``negative_g`` or more (background scored like objects);
    * ``train/cls_grad/neg_overlap_share``: those negatives' share of the
      summed absolute gradient (what the loss spends on pushing them down);
    * ``train/cls_grad/pos_hard``: the share of the positives with
      ``g = 1 - p >= hard_g`` (not logged for a window without positives).

    Inputs: logits ``(N, C)``, labels ``(N,)`` with ``C`` for background,
    optional label weights ``(N,)`` or ``(N, C)`` (0: ignored), passed as the
    loss's first three arguments or as ``pred``/``cls_score``,
    ``target``/``label`` and ``weight``/``label_weight``. A ``(labels,
    scores)`` target (quality focal losses) counts its labels. Softmax losses
    are refused. The sums stay on the device; each window's are copied to the
    host once, at its end. Elements whose gradient is not finite (an fp16
    overflow step) are left out of the sums. Under distributed training each
    rank logs its own statistics.

    Args:
        loss (str): path of the loss module in the model.
        interval (int, optional): window length; default the ``LoggerHook``'s.
        negative_g (float): ``g`` threshold of ``neg_overlap``, in (0, 1).
        hard_g (float): ``g`` threshold of ``pos_hard``, in (0, 1).
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) in after_train_iter

    def __init__(self, loss: str = 'bbox_head.loss_cls', interval: Optional[int] = None,
                 negative_g: float = NEGATIVE_G, hard_g: float = HARD_G):
        check_interval(interval)
        if not isinstance(loss, str) or not loss:
            raise ValueError(f'loss must be the module path of a loss, got {loss!r}')
        for name, value in (('negative_g', negative_g), ('hard_g', hard_g)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < 1:
                raise ValueError(f'{name} must be in (0, 1), got {value!r}')
        self.loss = loss
        self.interval = interval
        self.negative_g = float(negative_g)
        self.hard_g = float(hard_g)
        self.totals: Optional[torch.Tensor] = None  # float64 (len(FIELDS),), on the device
        self._handle = None
        self._window_due = True

    def before_train(self, runner) -> None:
        """Find the loss and hook into its calls."""
        self.interval, _ = logger_interval(runner, self.interval)
        module = find_sigmoid_cls_loss(runner.model, self.loss)
        self._handle = module.register_forward_pre_hook(self._on_loss_call, with_kwargs=True)
        runner.logger.info(f'ClsGradientShareHook: logging {self.loss} ('
                           f'{type(module).__name__}) as cls_grad every {self.interval} '
                           'iterations')

    def after_train(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def before_train_epoch(self, runner) -> None:
        self._window_due = True

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """At the first iteration of a window, zero the sums (a device op)."""
        if self._window_due and self.totals is not None:
            self.totals.zero_()
        self._window_due = False

    def _on_loss_call(self, module, args, kwargs) -> None:
        def pick(index, *names):
            if len(args) > index:
                return args[index]
            return next((kwargs[n] for n in names if kwargs.get(n) is not None), None)

        pred = pick(0, 'pred', 'cls_score')
        labels = pick(1, 'target', 'label')
        weights = pick(2, 'weight', 'label_weight')
        if not module.training or not torch.is_tensor(pred) or not pred.requires_grad:
            return
        if isinstance(labels, (tuple, list)):  # (labels, quality scores)
            labels = labels[0]
        if not torch.is_tensor(labels):
            raise ValueError('ClsGradientShareHook: the loss was called without labels '
                             f'(second argument: {type(labels).__name__})')
        check_cls_inputs(pred, labels, weights)
        if self.totals is None or self.totals.device != pred.device:
            self.totals = torch.zeros(len(FIELDS), dtype=torch.float64, device=pred.device)
        labels = labels.detach()
        weights = weights.detach() if torch.is_tensor(weights) else None
        valid, positive = element_masks(labels, weights, pred.shape[1])
        self.totals[FORWARD_FIELDS] += forward_counts(pred, valid, positive, self.negative_g,
                                                      self.hard_g)
        totals, scores, negative_g = self.totals, pred.detach(), self.negative_g

        def on_grad(grad):  # the masks are recomputed rather than kept until the backward
            valid, positive = element_masks(labels, weights, grad.shape[1])
            overlapping = overlapping_negatives(scores, valid, positive, negative_g)
            totals[BACKWARD_FIELDS] += gradient_sums(grad, valid, positive, overlapping)

        pred.register_hook(on_grad)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """At the end of a window, log its shares (one host copy) and start the next."""
        if not is_window_end(self, runner, batch_idx, self.interval):
            return
        self._window_due = True
        if self.totals is None:
            return
        shares = summarize_shares(self.totals.cpu().tolist())
        if shares is None:
            return
        for key in LOGGED_KEYS:
            if shares[key] is not None:
                runner.message_hub.update_scalar(LOG_PREFIX + key, shares[key])
