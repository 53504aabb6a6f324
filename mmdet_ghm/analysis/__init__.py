"""Analysis of gradient norms and their density (the GHM paper's figures)."""
from .gradient_stats import (GradientStats, classification_gradient_norms, focal_gradient_norm,
                             head_targets, regression_gradient_norms,
                             smooth_l1_gradient_norm)

__all__ = ['GradientStats', 'classification_gradient_norms', 'focal_gradient_norm',
           'head_targets', 'regression_gradient_norms', 'smooth_l1_gradient_norm']
