"""Explanations of fitted classifiers: Grad-CAM heatmaps and their plots."""

from ._gradcam import find_target_layer, gradcam
from ._plot import plot_gradcam

__all__ = ["find_target_layer", "gradcam", "plot_gradcam"]
