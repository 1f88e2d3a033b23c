"""Explanations of fitted classifiers: Grad-CAM heatmaps and their plots."""

from ._gradcam import find_target_layer, gradcam
from ._plot import plot_gradcam, plot_roc_with_ci

__all__ = ["find_target_layer", "gradcam", "plot_gradcam", "plot_roc_with_ci"]
