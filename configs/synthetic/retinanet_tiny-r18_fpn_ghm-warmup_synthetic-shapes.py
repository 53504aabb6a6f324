# GHM-C + GHM-R (published settings) with a warm-up from uniform weights:
# w_j = (1 - lam) * 1 + lam * beta_j, lam = min(1, t / warmup), t = training
# iteration (GHMWarmupHook sets it from runner.iter; resume-correct). Why 500
# iterations (10 of the 30 epochs of 50 iterations): from scratch, CE learns
# fastest in the first 10 epochs here (mAP 0.52 at epoch 10, README curves)
# while GHM lags (0.13); by iteration 500 the cosine learning rate is still
# 75 % of its peak, so GHM has two thirds of the schedule at full strength.
# The density EMA keeps updating during the warm-up.
_base_ = './retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(warmup=500),
        loss_bbox=dict(warmup=500)))
# Lists replace the base's: keep the statistics hook and add the warm-up clock.
custom_hooks = [
    dict(type='GHMStatsHook'), dict(type='GHMWarmupHook'), dict(type='RNGStateHook')]
