"""PretrainedFeatures: a frozen pretrained backbone as a scikit-learn transformer."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import os
from enum import Enum
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._backbones import build_architecture, load_backbone, probe_features
from ._feature_cache import cached_embed, memory_location, state_digest
from ._images import ImageDataset, check_images
from ._model_schema import check_features_fitted
from ._param_docs import fill_param_docs
from ._persistence import (
    apply_memory_format,
    cpu_tensors,
    load_model,
    load_tensors,
    memory_format,
    save_model,
)
from ._preprocessing import Preprocessing, resolve_detail_size
from ._utils import (
    check_random_seed,
    explain_out_of_memory,
    fitted_device,
    make_loader,
    resolve_device,
    resolve_num_workers,
    seed_everything,
)

__all__ = ["PretrainedFeatures"]

logger = logging.getLogger(__name__)


class _BackboneParamsMixin:
    """Validation and set-up shared by both estimators."""

    def _validate_params_values(self):
        """Every parameter check, for a model that skips ``fit`` (loaded from
        a file): ``_parameter_constraints``, then :meth:`_check_param_details`."""
        self._validate_params()
        self._check_param_details()

    def _check_param_details(self):
        """Checks that ``_parameter_constraints`` cannot express."""
        # refuses booleans, which the integer interval lets through
        resolve_detail_size(self.detail_size, self.image_size, "features")

    # The fitted preprocessing is one value, ``preprocessing_``; these three
    # read-only views keep the attributes of earlier versions.
    @property
    def mean_(self):
        """Normalisation means of the weights (``preprocessing_.mean``)."""
        return self.preprocessing_.mean

    @property
    def std_(self):
        """Normalisation deviations of the weights (``preprocessing_.std``)."""
        return self.preprocessing_.std

    @property
    def interpolation_(self):
        """Resize interpolation of the weights (``preprocessing_.interpolation``)."""
        return self.preprocessing_.interpolation

    def _eval_transform(self):
        return self.preprocessing_.transform()

    def _pickle_state(self, module_attrs):
        """Pickle state with the torch modules moved to the CPU.

        A model fitted on CUDA then loads on a machine without a GPU.
        """
        state = self.__dict__.copy()
        for attr in module_attrs:
            module = state.get(attr)
            if module is not None and any(p.is_cuda for p in module.parameters()):
                state[attr] = copy.deepcopy(module).cpu()
        return state

    def _unpickle_state(self, state, module_attrs):
        state = dict(state)
        # a pickle from before detail_size: its model had no such step
        state.setdefault("detail_size", None)
        if "mean_" in state:
            # a pickle of a version that kept the preprocessing as three values
            fields = {k: state.pop(k) for k in ("mean_", "std_", "interpolation_")}
            state["preprocessing_"] = Preprocessing.from_file_fields(
                fields,
                image_size=state["image_size"],
                in_chans=state.get("in_chans", 3),
                equalize=state.get("equalize", False),
            )
        self.__dict__.update(state)
        if state.get("device_") is None:
            return
        self.device_ = fitted_device(state["device_"])
        for attr in module_attrs:
            module = state.get(attr)
            if module is not None:
                setattr(self, attr, module.to(self.device_))


def _weights_identity(weights):
    """What identifies the weights in a cache key: name, or file content hash."""
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    return str(weights)


class PretrainedFeatures(_BackboneParamsMixin, TransformerMixin, BaseEstimator):
    """Embed images with a frozen pretrained backbone.

    ``fit`` loads the backbone and its weights (nothing is learned from
    ``X``); ``transform`` returns the pooled embedding of each image. This is
    what :class:`PretrainedCNNClassifier` uses in ``mode="features"``, and it
    fits in any Pipeline.

    Parameters
    ----------
    %(backbone)s
    %(weights)s
    %(image_size)s
    %(batch_size)s
    %(device)s
    %(num_workers)s
    random_state : int, RandomState or None, default=None
        Seeds the random initialisation when ``weights=None``.
    verbose : int, default=0
        Progress bar when > 0.
    memory : str, joblib.Memory or None, default=None
        Cache of embeddings. The key covers the image content, the backbone,
        the weights (file content for paths), the image size, the
        preprocessing and the seed where weights are random, plus a hash of
        the loaded weights themselves. Entries are kept per image, so the
        folds and candidates of a cross-validated search share one backbone
        pass.
    %(in_chans)s
    %(equalize)s
    %(detail_size)s

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The headless backbone, in eval mode.
    n_features_out_ : int
        Width of the embedding.
    device_ : str
        Device used.
    mean_, std_ : tuple of float
        Normalisation statistics of the weights.
    preprocessing_ : Preprocessing
        The whole inference preprocessing (size, channels, mean, std,
        interpolation, equalisation), as used by :mod:`sklearn_cxr.export`.

    See Also
    --------
    PretrainedCNNClassifier : fine-tuning or frozen-feature classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedFeatures
    >>> X = np.random.RandomState(0).randint(0, 255, (4, 32, 32), dtype=np.uint8)
    >>> feats = PretrainedFeatures(backbone="resnet18", weights=None,
    ...                            image_size=32, random_state=0)
    >>> feats.fit_transform(X).shape
    (4, 512)
    """

    _parameter_constraints: dict = {
        "backbone": [str, torch.nn.Module],
        # a torchvision weights enum member is accepted too
        "weights": [str, os.PathLike, Enum, None],
        "image_size": [Interval(Integral, 8, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        # names such as "cuda:1" are checked in fit by resolve_device
        "device": [str, torch.device],
        "num_workers": [
            Interval(Integral, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "in_chans": [Options(Integral, {1, 3})],
        "equalize": ["boolean"],
        "detail_size": [
            Interval(Integral, 8, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
    }

    def __init__(
        self,
        *,
        backbone="resnet18",
        weights="DEFAULT",
        image_size=224,
        batch_size=32,
        device="auto",
        num_workers=0,
        random_state=None,
        verbose=0,
        memory=None,
        in_chans=3,
        equalize=False,
        detail_size="auto",
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.memory = memory
        self.in_chans = in_chans
        self.equalize = equalize
        self.detail_size = detail_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Load the backbone and its weights.

        Parameters
        ----------
        X : ignored
            Accepted (and validated when given) for Pipeline compatibility.
        y : ignored

        Returns
        -------
        self : PretrainedFeatures
        """
        self._check_param_details()
        n_images = None if X is None else len(check_images(X))
        seed = check_random_seed(self.random_state)
        seed_everything(seed)
        device = resolve_device(self.device)
        spec = load_backbone(self.backbone, self.weights, in_chans=self.in_chans)
        n_features = probe_features(spec.body, self.image_size, self.in_chans)
        detail_size = resolve_detail_size(self.detail_size, self.image_size, "features")
        # channels_last on the CPU too: about 15-30% less CPU time per image
        # for EfficientNet-Lite0 on this 2-core machine (benchmarks/speed.py).
        backbone = spec.body.eval().to(device).to(memory_format=torch.channels_last)
        # Commit only now: a refused fit leaves a fitted transformer as it was.
        if n_images is not None:
            self.n_images_seen_ = n_images  # informative only
        self.seed_, self.device_ = seed, device
        self.preprocessing_ = Preprocessing.from_backbone(
            spec, self.image_size, self.in_chans, self.equalize, detail_size
        )
        self.n_features_out_ = n_features
        self.backbone_ = backbone
        return self

    def _config(self):
        backbone = self.backbone
        if isinstance(backbone, torch.nn.Module):
            backbone = f"{type(backbone).__qualname__}:{backbone!r}"
        return {
            "backbone": backbone,
            # the fitted weights themselves: covers files, seeds, "DEFAULT"
            # changing meaning across library versions, the 1-channel stem
            "state": state_digest(self.backbone_),
            "weights": _weights_identity(self.weights),
            # image_size, in_chans, equalize, mean, std, interpolation,
            # detail_size where set (so entries cached before it existed,
            # with the same transform, still match)
            **{
                key: value
                for key, value in dataclasses.asdict(self.preprocessing_).items()
                if not (key == "detail_size" and value is None)
            },
            "seed": self.seed_ if self.weights is None else None,
            "version": 2,
        }

    def transform(self, X):
        """Embed images.

        Parameters
        ----------
        X : array-like or sequence of paths / PIL images
            See :class:`PretrainedCNNClassifier` for the accepted forms.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, ``n_features_out_``), float32
        """
        check_is_fitted(self, "backbone_")
        images = check_images(X)
        location = memory_location(self.memory)
        if location is None:
            return self._embed(images)
        # Per-image entries: folds and candidates of a search share them.
        return cached_embed(self, images, location)

    def _embed(self, images):
        dataset = ImageDataset(images, transform=self._eval_transform())
        loader = make_loader(
            dataset,
            batch_size=self.batch_size,
            num_workers=resolve_num_workers(self.num_workers, self.device_),
            device=self.device_,
        )
        out = np.empty((len(images), self.n_features_out_), dtype=np.float32)
        start = 0
        iterator = loader
        if self.verbose:
            from ._progress import bar

            iterator = bar(loader, desc="Embedding images")
        self.backbone_.eval()
        with torch.inference_mode(), explain_out_of_memory(
            self.batch_size, self.image_size
        ):
            for inputs, _ in iterator:
                batch = inputs["x"].to(self.device_, non_blocking=True)
                if batch.ndim == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with torch.autocast(
                    device_type="cuda", enabled=self.device_.startswith("cuda")
                ):
                    features = self.backbone_(batch)
                stop = start + features.shape[0]
                out[start:stop] = features.float().cpu().numpy()
                start = stop
        return out

    def save(self, path):
        """Save the fitted transformer to one file in the safe format.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (a zip archive); see :ref:`persistence`.

        Returns
        -------
        path : str
        """
        return save_model(self, path)

    @classmethod
    def load(cls, path, *, trusted=None):
        """Load a transformer written by :meth:`save`, without unpickling.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.
        trusted : list of str, default=None
            Unused by this transformer (no skops parts); kept for symmetry
            with :meth:`PretrainedCNNClassifier.load`.

        Returns
        -------
        features : PretrainedFeatures
        """
        return load_model(path, expected_class=cls, trusted=trusted)

    def get_feature_names_out(self, input_features=None):
        """Names ``embedding0``, ``embedding1``..."""
        check_is_fitted(self, "n_features_out_")
        return np.asarray(
            [f"embedding{i}" for i in range(self.n_features_out_)], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.non_deterministic = self.device == "cuda"
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------ persistence
    _STATE_PREFIX = "features."

    def _validate_state_params(self):
        """Check the parameters of a model read from a file."""
        self._validate_params_values()

    def _get_state(self):
        """The fitted state, for :func:`~sklearn_cxr._persistence.save_model`."""
        check_is_fitted(self, "backbone_")
        fitted = {
            "seed_": self.seed_,
            "device_": self.device_,
            "n_features_out_": self.n_features_out_,
            **self.preprocessing_.file_fields(),
            "memory_format": memory_format(self.backbone_),
        }
        if hasattr(self, "n_images_seen_"):
            fitted["n_images_seen_"] = int(self.n_images_seen_)
        tensors = {
            self._STATE_PREFIX + k: v for k, v in cpu_tensors(self.backbone_).items()
        }
        return {"fitted": fitted, "tensors": tensors}

    @staticmethod
    def _check_saved_state(fitted, path):
        """Check the ``fitted`` part of a file before anything is built."""
        check_features_fitted(fitted, path)

    def _set_state(self, fitted, tensors, parts):
        """Restore the fitted state that :meth:`_get_state` gave (checked by
        :meth:`_check_saved_state`)."""
        self.seed_ = fitted["seed_"]
        self.n_features_out_ = fitted["n_features_out_"]
        self.preprocessing_ = Preprocessing.from_file_fields(
            fitted,
            image_size=self.image_size,
            in_chans=self.in_chans,
            equalize=self.equalize,
        )
        if "detail_size_" not in fitted:
            # a file from before detail_size: its model had no such step
            self.detail_size = None
        if "n_images_seen_" in fitted:
            self.n_images_seen_ = fitted["n_images_seen_"]
        self.device_ = fitted_device(fitted["device_"])
        body = build_architecture(self.backbone, self.in_chans)
        load_tensors(body, tensors, self._STATE_PREFIX, f"backbone {self.backbone!r}")
        self.backbone_ = apply_memory_format(body.eval().to(self.device_), fitted)
        return self

    def __getstate__(self):
        return self._pickle_state(("backbone_",))

    def __setstate__(self, state):
        self._unpickle_state(state, ("backbone_",))


PretrainedFeatures.__doc__ = fill_param_docs(PretrainedFeatures.__doc__)
