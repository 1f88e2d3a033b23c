"""Overlay heatmaps on their images."""

from __future__ import annotations

import math

import numpy as np

from .._images import check_images

__all__ = ["plot_gradcam", "plot_roc_with_ci"]


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
    explained=None,
    colorbar=True,
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
    explained : str, list of str or None, default=None
        The class the heatmaps explain: one label for all (said in the
        figure's title) or one per image (said under each title), e.g. the
        ``target`` given to :func:`gradcam`, or the predicted labels when
        it explained the predicted class.
    colorbar : bool, default=True
        Draw a colour bar of the heatmap scale (0 = no evidence, 1 = the
        strongest evidence in that image).

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
    >>> fig = plot_gradcam(
    ...     images, heatmaps, titles=["a", "b"], explained="PNEUMONIA",
    ...     figure=Figure(),
    ... )
    >>> len(fig.axes)  # two panels and the colour bar
    3
    >>> fig.get_suptitle()
    'Grad-CAM: evidence for PNEUMONIA'
    """
    collection = check_images(images)
    n = len(collection)
    if len(heatmaps) != n:
        raise ValueError(
            f"{len(heatmaps)} heatmaps for {n} images; pass one heatmap per image."
        )
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images; pass one per image.")
    per_image = explained is not None and not isinstance(explained, str)
    if per_image and len(explained) != n:
        raise ValueError(
            f"{len(explained)} explained classes for {n} images; pass one label "
            "for all, or one per image."
        )
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
    if figure.get_layout_engine() is None:
        # room for the colour bar and the titles, which tight_layout lacks
        figure.set_layout_engine("constrained")
    extra = 0.6 if colorbar else 0.0
    figure.set_size_inches(panel_size * n_cols + extra, panel_size * n_rows)
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
        title = [] if titles is None else [str(titles[i])]
        if per_image:
            title.append(f"explains {explained[i]}")
        if title:
            ax.set_title("\n".join(title), fontsize=8)
    if explained is not None and not per_image:
        figure.suptitle(f"Grad-CAM: evidence for {explained}")
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        scale = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
        figure.colorbar(
            scale,
            ax=[ax for ax in axes[:n]],
            shrink=0.8,
            label="Grad-CAM (1 = strongest evidence in the image)",
        )
    return figure


def plot_roc_with_ci(
    y_true, score, *, pos_label, roc_auc, ci_low, ci_high, confidence=0.95,
    ax=None,
):
    """ROC curve whose legend gives the AUC and its confidence interval.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    score : array-like of shape (n_samples,)
        Score of ``pos_label`` (its probability).
    pos_label : label
        The positive class.
    roc_auc, ci_low, ci_high : float
        The ROC AUC and its confidence interval, as
        :func:`~sklearn_cxr.clinical_report` computes them.
    confidence : float, default=0.95
        The level of the interval, for the title.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a figure with ``pyplot``.

    Returns
    -------
    display : :class:`~sklearn.metrics.RocCurveDisplay`

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn_cxr.inspection import plot_roc_with_ci
    >>> ax = Figure().subplots()
    >>> _ = plot_roc_with_ci(
    ...     [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], pos_label=1,
    ...     roc_auc=0.75, ci_low=0.25, ci_high=1.0, ax=ax,
    ... )
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['AUC 0.75 [0.25, 1.00]', 'chance (AUC 0.50)']
    """
    from sklearn.metrics import RocCurveDisplay, roc_curve

    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure().subplots()
    fpr, tpr, _ = roc_curve(y_true, score, pos_label=pos_label)
    # no roc_auc given to the display: the legend is exactly our label
    name = f"AUC {roc_auc:.2f}"
    if np.isfinite(ci_low) and np.isfinite(ci_high):
        name += f" [{ci_low:.2f}, {ci_high:.2f}]"
    display = RocCurveDisplay(fpr=fpr, tpr=tpr, pos_label=pos_label).plot(
        ax=ax, name=name
    )
    ax.plot(
        [0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.50)"
    )
    ax.legend(loc="lower right", title=f"ROC AUC [{confidence:.0%} CI]")
    ax.set_title(f"ROC curve ({pos_label} positive)")
    return display
