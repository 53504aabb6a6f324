# The loss settings of mmdet-ghm, defined once: every GHM config of this
# package inherits this file and takes its losses from it (as
# ``dict(_delete_=True, **_base_.ghmc)``), and tools/compare_losses.py swaps
# the same definitions into a user's config (mmdet_ghm/comparison/loss_settings.py).
#
# GHM-C and GHM-R with the published hyper-parameters (Li et al., AAAI 2019;
# MMDetection's configs/ghm): GHM-C bins=30 momentum=0.75; GHM-R mu=0.02
# bins=10 momentum=0.7 loss_weight=10; with gradient clipping at norm 35.
ghmc = dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)
# GHM-C for softmax heads (Faster R-CNN's R-CNN head, SSD): g = 1 - p_y
ghmc_softmax = dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=False,
                    loss_weight=1.0)
ghmr = dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
# GHM "+ cap": beta_j <- min(beta_j, 100), on GHM-C and GHM-R (the reason for
# 100: configs/synthetic/retinanet_tiny-r18_fpn_ghm-cap_synthetic-shapes.py)
ghm_weight_cap = 100.0
ghm_clip_grad = dict(max_norm=35, norm_type=2)
# What a GHM config logs (docs/gradient_density.md) and how it resumes exactly
# (docs/resume.md)
ghm_custom_hooks = [dict(type='GHMStatsHook'), dict(type='RNGStateHook')]
# The baselines GHM is compared with: Focal Loss (RetinaNet's) and plain
# cross-entropy, sigmoid or softmax, and the L1 box loss of the study's configs.
focal = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
ce_sigmoid = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)
ce_softmax = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
# The other loss families of the paper's comparison (sigmoid heads): the
# alpha-balanced CE, the continuous focal loss |y - p|^beta * CE and OHEM
# (all positives and the hardest negatives, 3 per positive, at least 100).
alpha_ce = dict(type='AlphaBalancedCELoss', alpha=0.75, use_sigmoid=True, loss_weight=1.0)
continuous_focal = dict(type='ContinuousFocalLoss', beta=2.0, use_sigmoid=True, loss_weight=1.0)
ohem = dict(type='OHEMLoss', neg_pos_ratio=3, min_neg=100, use_sigmoid=True, loss_weight=1.0)
