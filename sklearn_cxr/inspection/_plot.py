"""Overlay heatmaps on their images."""

from __future__ import annotations

import math

import numpy as np

from .._images import check_images

__all__ = ["plot_gradcam"]


def plot_gradcam(
    images,
    heatmaps,
    *,
    titles=None,
    alpha=0.45,
    cmap="jet",
    n_cols=4,
    figure=None,
    panel_size=2.6,
):
    """Show each image in gray with its heatmap overlaid.

    Parameters
    ----------
    images : images
        Anything the estimators accept (array, paths, PIL images...).
    heatmaps : ndarray of shape (n, H, W) or list of ndarray
        As returned by :func:`gradcam`, aligned with ``images``.
    titles : list of str, default=None
        One title per image.
    alpha : float, default=0.45
        Opacity of the heatmap.
    cmap : str, default="jet"
        Matplotlib colour map of the heatmap.
    n_cols : int, default=4
        Panels per row.
    figure : matplotlib.figure.Figure, default=None
        Figure to draw into (resized to fit the panels); None creates one
        with ``pyplot``.
    panel_size : float, default=2.6
        Inches per panel.

    Returns
    -------
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from sklearn_cxr.inspection import plot_gradcam
    >>> images = np.zeros((2, 16, 16), dtype=np.uint8)
    >>> heatmaps = np.random.RandomState(0).rand(2, 16, 16)
    >>> fig = plot_gradcam(images, heatmaps, titles=["a", "b"], figure=Figure())
    >>> len(fig.axes)
    2
    """
    collection = check_images(images)
    n = len(collection)
    if len(heatmaps) != n:
        raise ValueError(
            f"{len(heatmaps)} heatmaps for {n} images; pass one heatmap per image."
        )
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images; pass one per image.")
    n_cols = max(1, min(int(n_cols), n))
    n_rows = max(1, math.ceil(n / n_cols))
    if figure is None:
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "plot_gradcam needs matplotlib: pip install matplotlib."
            ) from exc

        figure = plt.figure(layout="constrained")
    figure.set_size_inches(panel_size * n_cols, panel_size * n_rows)
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            ax.remove()
            continue
        image = collection[i].float().numpy()
        image = image.mean(axis=0) if image.shape[0] == 3 else image[0]
        heatmap = np.asarray(heatmaps[i], dtype=np.float32)
        if heatmap.shape != image.shape:
            raise ValueError(
                f"heatmap {i} has shape {heatmap.shape} but image {i} is "
                f"{image.shape}; pass the heatmaps gradcam returned for these "
                "images."
            )
        ax.imshow(image, cmap="gray")
        ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return figure
