# GHM-C + GHM-R (published settings) with the bias-corrected EMA density:
# S_hat_j = S_j / (1 - m^t_j), t_j = number of updates of region j. The
# published EMA starts at zero, so every region's first weight is 1 / (1 - m)
# times too large (4x for GHM-C's m = 0.75, 3.3x for GHM-R's m = 0.7); on this
# set that hits the start of training, when every region is new. No value to
# choose: the correction is exact for the counts seen.
_base_ = './retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(ema_bias_correction=True),
        loss_bbox=dict(ema_bias_correction=True)))
