"""Label-free adaptation to a target site, in skada's conventions.

A hospital has thousands of its own X-rays without labels. ``fit(X, y,
sample_domain=...)`` takes them beside the labelled training images, the way
skada (scikit-learn-contrib's domain-adaptation library) does: a positive or
zero ``sample_domain`` marks a labelled *source* image, a negative one an
unlabelled *target* image, whose label is ignored (the masked label: ``-1``
for numeric labels, ``"-1"`` or ``None`` for string labels). The classifier
then adapts to the target:

- feature mode: ``"standardize"`` (each site's embeddings standardised with
  its own mean and scale) or ``"coral"`` (skada's ``CORALAdapter``: source
  embeddings whitened and re-coloured with the target covariance);
- finetune mode: ``"adabn"`` (BatchNorm statistics re-estimated on the target
  images, Li et al. 2016) or ``"deepcoral"`` (a CORAL loss between the pooled
  features of source and target batches during training, Sun & Saenko 2016,
  then AdaBN).

This module holds the domain bookkeeping, the feature-mode methods and their
persistence; the finetune-mode methods are in :mod:`sklearn_cxr._adapt_finetune`.
The estimators call them only when ``sample_domain`` is given.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

__all__ = ["ADAPTATIONS"]

logger = logging.getLogger(__name__)

#: Methods per mode; "auto" picks the first (the best measured, see the docs).
ADAPTATIONS = {
    "features": ("standardize", "coral"),
    "finetune": ("adabn", "deepcoral"),
}


# ----------------------------------------------------------------- domains
def check_sample_domain(sample_domain, n_samples, *, name="sample_domain"):
    """``sample_domain`` as an int64 array of length ``n_samples``.

    A scalar applies to every sample, as in skada.
    """
    values = np.asarray(sample_domain)
    if values.ndim == 0:
        values = np.full(n_samples, values.item())
    if values.ndim != 1 or len(values) != n_samples:
        raise ValueError(
            f"{name} must give one domain per image: expected {n_samples} "
            f"values, got shape {np.shape(sample_domain)}."
        )
    if values.dtype.kind == "b" or values.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold integers (>= 0 for labelled source sites, < 0 "
            f"for the unlabelled target site), got dtype {values.dtype}."
        )
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(
                f"{name} must hold integers, got non-integer values such as "
                f"{values[~np.isfinite(values) | (values != np.round(values))][0]}."
            )
    return values.astype(np.int64)


def is_masked(label):
    """Whether ``label`` is the masked label of an unlabelled target image."""
    if label is None:
        return True
    if isinstance(label, str):
        return label == "-1"
    try:
        return bool(label == -1)
    except (TypeError, ValueError):
        return False


class DomainSplit:
    """Source and target parts of a fit with ``sample_domain``.

    Parameters
    ----------
    sample_domain : ndarray of int
        Checked domains, one per image.
    """

    def __init__(self, sample_domain):
        self.sample_domain = sample_domain
        self.source_idx = np.flatnonzero(sample_domain >= 0)
        self.target_idx = np.flatnonzero(sample_domain < 0)
        targets = np.unique(sample_domain[self.target_idx])
        if len(targets) > 1:
            raise ValueError(
                f"sample_domain names several target sites {targets.tolist()}; "
                "adapt to one target site per model (fit one model per site)."
            )
        if not len(self.source_idx):
            raise ValueError(
                "sample_domain marks every image as target (< 0): at least some "
                "labelled source images (sample_domain >= 0) are needed."
            )
        self.target_domain = int(targets[0]) if len(targets) else None
        self.source_domains = sample_domain[self.source_idx]

    @property
    def has_target(self):
        return self.target_domain is not None


def split_fit_inputs(images, y, sample_domain, groups, sample_weight):
    """Keep the labelled source part of the fit inputs; the split says the rest.

    Returns
    -------
    split : DomainSplit
    source : tuple
        ``(images, y, groups, sample_weight)`` of the source images.
    """
    n = len(images)
    domains = check_sample_domain(sample_domain, n)
    split = DomainSplit(domains)
    if y is None:
        raise ValueError("y is required: pass one label per image.")
    y = np.asarray(y) if hasattr(y, "dtype") else np.asarray(y, dtype=object)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"X has {n} images but y has shape {y.shape}; give one label per "
            "image (the masked label -1, '-1' or None for target images)."
        )
    src = split.source_idx
    y_source = y[src]
    if y_source.dtype == object:
        # labels of the sources only: the target's mask may differ in type
        y_source = np.asarray(y_source.tolist())
    masked = [v for v in y_source.tolist() if is_masked(v)]
    if masked:
        raise ValueError(
            f"{len(masked)} source images (sample_domain >= 0) carry the masked "
            f"label {masked[0]!r}; a source image needs its true label, a target "
            "image a negative sample_domain. Relabel classes named -1."
        )
    source = (
        images.take(src),
        y_source,
        None if groups is None else _take(groups, src, n, "groups"),
        None
        if sample_weight is None
        else _take(sample_weight, src, n, "sample_weight"),
    )
    return split, source


def _take(values, idx, n, name):
    values = np.asarray(values)
    if len(values) != n:
        raise ValueError(
            f"{name} has {len(values)} entries but X has {n} images; pass one "
            "per image."
        )
    return values[idx]


def resolve_adaptation(adaptation, mode, has_target):
    """The method to run, or None; validates ``adaptation`` against ``mode``."""
    allowed = ADAPTATIONS[mode]
    if adaptation is not None and adaptation != "auto" and adaptation not in allowed:
        every = sorted({m for ms in ADAPTATIONS.values() for m in ms})
        where = next((m for m, ms in ADAPTATIONS.items() if adaptation in ms), None)
        hint = (
            f" ({adaptation!r} is a {where}-mode method; set mode={where!r})"
            if where
            else ""
        )
        raise ValueError(
            f"adaptation={adaptation!r} is not available in mode={mode!r}{hint}; "
            f"use None, 'auto' or one of {list(allowed)} (all methods: {every})."
        )
    if not has_target or adaptation is None:
        return None
    return allowed[0] if adaptation == "auto" else adaptation


def predict_domains(estimator, sample_domain, n_samples):
    """Per-image domain for prediction: the fitted target unless told otherwise."""
    state = getattr(estimator, "adaptation_", None)
    if sample_domain is None:
        if state is None:
            return None
        return np.full(n_samples, state["target_domain"], dtype=np.int64)
    domains = check_sample_domain(sample_domain, n_samples)
    if state is None:
        return None  # nothing was adapted: every image is treated alike
    known = set(state["source_domains"]) | {state["target_domain"]}
    unknown = sorted(set(np.unique(domains).tolist()) - known)
    if unknown:
        raise ValueError(
            f"sample_domain holds {unknown}, which were not seen in fit; this "
            f"model knows the source sites {sorted(state['source_domains'])} and "
            f"the target site {state['target_domain']}. Refit with the new site's "
            "images as the target."
        )
    return domains


# ---------------------------------------------------------- feature mode
class FeatureAdapter:
    """Domain-aware embedding transform of feature mode (not an estimator).

    ``"standardize"``: one ``StandardScaler`` per site. ``"coral"``: skada's
    ``CORALAdapter`` (Ledoit-Wolf shrunk covariances), which maps source
    embeddings onto the target's covariance and centres each site on its own
    mean. Both act on the embeddings after the estimator's shared scaler.
    """

    def __init__(self, method):
        self.method = method

    def fit_transform(self, source, source_domains, target, target_domain):
        """Fit on source and target embeddings; return the adapted sources."""
        if self.method == "standardize":
            self.scalers_ = {}
            out = np.empty(source.shape, dtype=np.float64)
            for domain in np.unique(source_domains):
                rows = source_domains == domain
                scaler = StandardScaler().fit(source[rows])
                self.scalers_[int(domain)] = scaler
                out[rows] = scaler.transform(source[rows])
            self.scalers_[int(target_domain)] = StandardScaler().fit(target)
            return out
        domains = np.concatenate([source_domains, np.full(len(target), target_domain)])
        self.coral_ = _coral_adapter()
        self.coral_.fit(np.concatenate([source, target]), sample_domain=domains)
        return self.transform(source, source_domains)

    def transform(self, embeddings, domains):
        """Adapt the embeddings of images from the given (fitted) domains."""
        if self.method == "standardize":
            out = np.empty(embeddings.shape, dtype=np.float64)
            for domain in np.unique(domains):
                rows = domains == domain
                out[rows] = self.scalers_[int(domain)].transform(embeddings[rows])
            return out
        return self.coral_.transform(
            np.asarray(embeddings, dtype=np.float64),
            sample_domain=domains,
            allow_source=True,
        )


def fit_feature_adaptation(features, scaler, adapt, source_embeddings, copies=0):
    """Feature mode: fit the adapter; return adapted sources and the state.

    ``source_embeddings`` holds the sources, then ``copies`` augmented
    copies of them in the same order (each copy keeps its image's site).
    """
    method, split, target_images = adapt
    target = features.transform(target_images)
    if scaler is not None:
        target = scaler.transform(target)
    adapter = FeatureAdapter(method)
    adapted = adapter.fit_transform(
        source_embeddings,
        np.tile(split.source_domains, 1 + copies),
        target,
        split.target_domain,
    )
    state = _state(method, split)
    state["adapter"] = adapter
    return adapted, state


def _state(method, split):
    return {
        "method": method,
        "target_domain": split.target_domain,
        "source_domains": sorted(int(d) for d in np.unique(split.source_domains)),
        "n_target_images": int(len(split.target_idx)),
    }


def _import_skada():
    """Import skada without its side effect on the global scikit-learn config.

    ``import skada`` calls ``sklearn.set_config(enable_metadata_routing=True)``;
    a user who did not ask for metadata routing keeps it off.
    """
    import sklearn

    try:
        with sklearn.config_context():
            import skada
    except ImportError as exc:
        raise ImportError(
            "adaptation='coral' uses skada's CORALAdapter; install it with "
            "`pip install sklearn-cxr[adapt]` (or `pip install skada`), or use "
            "adaptation='standardize', which needs no extra package."
        ) from exc
    return skada


def _coral_adapter():
    return _import_skada().CORALAdapter(reg="auto")


def check_deep_params(method, accelerator, coral_weight):
    """Refuse what Deep CORAL cannot do before any work is done."""
    if method != "deepcoral":
        return
    if accelerator is not None:
        raise ValueError(
            "adaptation='deepcoral' does not run under accelerator yet; use "
            "adaptation='adabn' or accelerator=None."
        )
    if (
        isinstance(coral_weight, bool)
        or not isinstance(coral_weight, (int, float, np.floating, np.integer))
        or not np.isfinite(coral_weight)
        or coral_weight < 0
    ):
        raise ValueError(
            f"coral_weight must be a finite number >= 0, got {coral_weight!r}."
        )


def check_target_size(split, minimum=2):
    """Refuse adaptation to a target of fewer than ``minimum`` images."""
    n = len(split.target_idx)
    if n < minimum:
        raise ValueError(
            f"The target site has {n} image(s); adaptation estimates statistics "
            f"of the target and needs at least {minimum}. Pass more unlabelled "
            "target images or fit without them."
        )


class DomainAwareMixin:
    """``sample_domain`` in fit, predict and score, requested as skada does.

    Under scikit-learn's metadata routing (which ``import skada`` switches
    on) ``cross_val_score(..., params={"sample_domain": d})`` with skada's
    splitters then passes each fold's domains to ``fit``, ``predict``,
    ``predict_proba`` and ``score``.
    """

    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__predict = {"sample_domain": True}
    __metadata_request__predict_proba = {"sample_domain": True}
    __metadata_request__score = {"sample_domain": True}

    def score(self, X, y, sample_weight=None, sample_domain=None):
        """Accuracy of ``predict(X, sample_domain=sample_domain)`` on ``y``.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
        sample_domain : array-like of int or int, default=None
            Domains of the images (see :meth:`predict`).

        Returns
        -------
        score : float
        """
        from sklearn.metrics import accuracy_score

        return float(
            accuracy_score(
                y,
                self.predict(X, sample_domain=sample_domain),
                sample_weight=sample_weight,
            )
        )


# ------------------------------------------------------------ persistence
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_CORAL_ARRAYS = (
    "mean_source_",
    "mean_target_",
    "cov_source_inv_sqrt_",
    "cov_target_sqrt_",
)


def adaptation_to_file(state):
    """The JSON part and the tensors of ``adaptation_``, for ``save()``."""
    info = {
        key: state[key]
        for key in ("method", "target_domain", "source_domains", "n_target_images")
    }
    tensors = {}
    adapter = state.get("adapter")
    if adapter is not None and adapter.method == "standardize":
        info["scaled_domains"] = sorted(adapter.scalers_)
        for domain, scaler in adapter.scalers_.items():
            tensors[f"adapt.scaler.{domain}.mean"] = torch.as_tensor(scaler.mean_)
            tensors[f"adapt.scaler.{domain}.scale"] = torch.as_tensor(scaler.scale_)
    elif adapter is not None:
        info["coral_params"] = adapter.coral_.get_params()
        for name in _CORAL_ARRAYS:
            value = np.ascontiguousarray(getattr(adapter.coral_, name))
            tensors[f"adapt.coral.{name}"] = torch.as_tensor(value)
    elif state.get("source_batchnorm") is not None:
        info["source_batchnorm"] = sorted(state["source_batchnorm"])
        for layer, buffers in state["source_batchnorm"].items():
            for key, value in buffers.items():
                tensors[f"adapt.source_bn.{layer}.{key}"] = value.contiguous()
    return info, tensors


def adaptation_from_file(info, tensors):
    """Rebuild ``adaptation_`` from :func:`adaptation_to_file`'s output."""
    state = {
        "method": info["method"],
        "target_domain": int(info["target_domain"]),
        "source_domains": [int(d) for d in info["source_domains"]],
        "n_target_images": int(info["n_target_images"]),
    }
    if "scaled_domains" in info:
        adapter = FeatureAdapter("standardize")
        adapter.scalers_ = {}
        for domain in info["scaled_domains"]:
            scaler = StandardScaler()
            scaler.mean_ = tensors[f"adapt.scaler.{domain}.mean"].numpy()
            scaler.scale_ = tensors[f"adapt.scaler.{domain}.scale"].numpy()
            scaler.var_ = scaler.scale_**2
            scaler.n_features_in_ = len(scaler.mean_)
            scaler.n_samples_seen_ = 0
            adapter.scalers_[int(domain)] = scaler
        state["adapter"] = adapter
    elif "coral_params" in info:
        adapter = FeatureAdapter("coral")
        adapter.coral_ = _coral_adapter().set_params(**info["coral_params"])
        for name in _CORAL_ARRAYS:
            setattr(adapter.coral_, name, tensors[f"adapt.coral.{name}"].numpy())
        state["adapter"] = adapter
    else:
        stats = None
        if "source_batchnorm" in info:
            stats = {
                layer: {
                    key: tensors[f"adapt.source_bn.{layer}.{key}"]
                    for key in _BN_BUFFERS
                }
                for layer in info["source_batchnorm"]
            }
        state["source_batchnorm"] = stats
    return state
