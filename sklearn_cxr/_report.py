"""The evaluation report: metrics, figures, ``report.json`` and an HTML page.

:func:`evaluate_classifier` puts the metrics of :mod:`sklearn_cxr._evaluation`
and the figures of :mod:`sklearn_cxr._figures` together;
:func:`write_html_report` writes one self-contained page for the people who
must trust it: it embeds the figures (as base64 PNG) and needs no other file,
script or network access.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._evaluation import binary_scores, clinical_report
from ._figures import write_report_figures

__all__ = ["evaluate_classifier", "write_html_report"]

_FIGURES = (
    ("roc_curve", "ROC curve"),
    ("confusion_matrix", "Confusion matrix"),
    ("gradcam_errors", "Grad-CAM of the most confident errors"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.6em 1em; }
"""


def evaluate_classifier(
    estimator,
    X,
    y,
    *,
    groups=None,
    positive_label=None,
    threshold=0.5,
    n_bootstrap=1000,
    confidence=0.95,
    random_state=None,
    report_dir=None,
    n_gradcam=8,
):
    """Clinical report of a fitted classifier on images, optionally with plots.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
        Typically a :class:`PretrainedCNNClassifier`. A model with more than
        two classes, one of them ``"NORMAL"`` (any case), is evaluated as
        disease (any other class, called ``positive_label``, by default
        ``"PNEUMONIA"``) versus normal, scored by ``1 - P(normal)``.
    X : images
        Anything the estimator accepts (paths, arrays...).
    y : array-like of shape (n_samples,)
        True labels.
    groups : array-like of shape (n_samples,), default=None
        Patient ids; the bootstrap resamples patients.
    positive_label : object, default=None
        The label of the disease; None applies the package's rule (see
        :ref:`positive-label` and :func:`clinical_report`).
    threshold, n_bootstrap, confidence, random_state
        See :func:`clinical_report`.
    report_dir : str or os.PathLike, default=None
        Folder to write ``roc_curve.png``, ``confusion_matrix.png``,
        ``gradcam_errors.png`` (Grad-CAM of the most confident errors, for a
        :class:`PretrainedCNNClassifier`) and ``report.json``. Needs
        matplotlib.
    n_gradcam : int, default=8
        Errors shown in the Grad-CAM grid.

    Returns
    -------
    report : ClinicalReport

    See Also
    --------
    clinical_report : the same from labels and scores.
    """
    check_is_fitted(estimator)
    proba = np.asarray(estimator.predict_proba(X))
    y = np.asarray(y)
    y_binary, score, positive = binary_scores(
        estimator.classes_, proba, y, positive_label
    )
    report = clinical_report(
        y_binary,
        score,
        positive_label=positive,
        groups=groups,
        threshold=threshold,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
    )
    if report_dir is not None:
        files = write_report_figures(
            report_dir, report, estimator, X, y_binary, score, n_gradcam=n_gradcam
        )
        report.extra["figures"] = files
        with open(os.path.join(report_dir, "report.json"), "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    return report


def _training_size(model):
    """Images the model was trained on, where the fitted state tells it."""
    scaler = getattr(model, "scaler_", None)
    if scaler is not None and hasattr(scaler, "n_samples_seen_"):
        return f"{int(np.max(scaler.n_samples_seen_))} images"
    net = getattr(model, "net_", None)
    history = getattr(net, "history", None)
    if history:
        batches = history[0].get("batches", [])
        train = sum(b.get("train_batch_size", 0) for b in batches)
        valid = sum(b.get("valid_batch_size", 0) for b in batches)
        if train:
            return f"{train} images" + (f" (+ {valid} for validation)" if valid else "")
    return "not recorded in the model"


def _metadata(model, data_description):
    from ._version import __version__

    backbone = getattr(model, "backbone", None)
    if backbone is not None and not isinstance(backbone, str):
        backbone = type(backbone).__name__
    rows = [
        ("Backbone", backbone),
        ("Mode", getattr(model, "mode_fitted_", getattr(model, "mode", None))),
        ("Classes", ", ".join(str(c) for c in getattr(model, "classes_", []))),
        ("Image size", getattr(model, "image_size", None)),
        ("Training data", _training_size(model)),
        ("Evaluated on", data_description),
        ("sklearn-cxr version", __version__),
        (
            "Date",
            datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"
            ),
        ),
    ]
    return [(name, value) for name, value in rows if value is not None]


def _image_tag(path, alt):
    with open(path, "rb") as handle:
        data = base64.b64encode(handle.read()).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
    )


def _fmt(value):
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def write_html_report(directory, report, model, *, data_description=None):
    """Write ``directory/index.html``: metrics, figures and model metadata.

    Parameters
    ----------
    directory : str or os.PathLike
        The report folder of :func:`~sklearn_cxr.evaluate_classifier`
        (``report_dir``), holding the figures listed in
        ``report.extra["figures"]``.
    report : ClinicalReport
        The evaluation.
    model : fitted classifier
        Its parameters and fitted state give the metadata.
    data_description : str, default=None
        What the model was evaluated on, e.g. the folder.

    Returns
    -------
    path : str
        The page written.
    """
    directory = os.fspath(directory)
    esc = html.escape
    negative, positive = (str(label) for label in report.labels)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Evaluation report: {esc(positive)} vs {esc(negative)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation report: {esc(positive)} vs {esc(negative)}</h1>",
        '<p class="warning">A research tool: this model is not a medical device '
        "and must not be used to diagnose patients.</p>",
        "<h2>Metrics</h2>",
        f"<p>{report.n_samples} images, {report.n_groups} "
        f"{'patients' if report.resampled_by == 'patient' else 'resampling units'}; "
        f"{report.confidence:.0%} confidence intervals from {report.n_bootstrap} "
        f"bootstrap resamples by {esc(report.resampled_by)}; an image is called "
        f"{esc(positive)} when its score is at least {report.threshold:g}.</p>",
        '<table id="metrics"><tr><th>metric</th><th>value</th>'
        f"<th>{report.confidence:.0%} CI</th></tr>",
    ]
    for name, estimate in report.metrics.items():
        parts.append(
            f"<tr><td>{esc(name.replace('_', ' '))}</td>"
            f'<td class="num">{_fmt(estimate.value)}</td>'
            f'<td class="num">[{_fmt(estimate.ci_low)}, {_fmt(estimate.ci_high)}]'
            "</td></tr>"
        )
    parts.append("</table>")
    (tn, fp), (fn, tp) = np.asarray(report.confusion_matrix).tolist()
    parts += [
        '<table id="confusion"><tr><th>true \\ predicted</th>'
        f"<th>{esc(negative)}</th><th>{esc(positive)}</th></tr>",
        f'<tr><th>{esc(negative)}</th><td class="num">{tn}</td>'
        f'<td class="num">{fp}</td></tr>',
        f'<tr><th>{esc(positive)}</th><td class="num">{fn}</td>'
        f'<td class="num">{tp}</td></tr></table>',
    ]
    figures = report.extra.get("figures", {})
    for key, title in _FIGURES:
        parts.append(f"<h2>{esc(title)}</h2>")
        if key in figures:
            tag = _image_tag(os.path.join(directory, figures[key]), title)
            parts.append(f'<figure id="{key}">{tag}</figure>')
        elif key == "gradcam_errors":
            parts.append("<p>No errors to show, or no Grad-CAM for this model.</p>")
        else:
            parts.append("<p>Not drawn (one class only, or no figure written).</p>")
    parts += ['<h2>Model</h2><table id="metadata">']
    for name, value in _metadata(model, data_description):
        parts.append(f"<tr><th>{esc(name)}</th><td>{esc(str(value))}</td></tr>")
    parts += ["</table>", "</body></html>", ""]
    path = os.path.join(directory, "index.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    return path
