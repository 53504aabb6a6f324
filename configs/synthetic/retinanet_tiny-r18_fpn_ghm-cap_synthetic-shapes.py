# GHM-C + GHM-R (published settings) with bounded weights:
# beta_j <- min(beta_j, weight_cap), in units of the uniform CE weight (the
# average beta over the valid elements is 1). Why 100: positives are ~0.16 %
# of the valid (anchor, class) elements here (4,734 of 2,986,145 on the val
# split, README), so Focal Loss, normalised by the number of positives, gives
# a hard positive about alpha * N / N_pos = 0.25 * 630 = ~160 times the uniform
# weight; a cap of 100 keeps GHM's emphasis on hard examples of that order,
# while cutting the weights of the rare elements alone in a region (label
# outliers), which reach N / n: ~8,000 on P3 (16 images x 16 x 16 locations x
# 9 anchors x 5 classes = 184,320 elements, ~22 non-empty regions). With ~22
# regions the cap binds on regions holding under 1 / (100 * 22) = 0.045 % of a
# call's elements. For GHM-R (10 regions, its mass spread over all of them) it
# binds only on near-empty regions.
_base_ = './retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(weight_cap=_base_.ghm_weight_cap),
        loss_bbox=dict(weight_cap=_base_.ghm_weight_cap)))
