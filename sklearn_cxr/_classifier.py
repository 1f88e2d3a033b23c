"""PretrainedCNNClassifier: transfer learning on chest X-rays, the sklearn way."""

from __future__ import annotations

import logging
import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    Options,
    StrOptions,
)
from sklearn.utils.validation import (
    check_is_fitted,
)

from . import _adapt, _adapt_finetune
from ._adapt import DomainAwareMixin
from ._augment import AUGMENT_OPTIONS, Chain, ViewCollection, check_tta
from ._callback_params import NestedParamsMixin
from ._callbacks import FineTuneSchedule, FreezeBody, StopOnNonFiniteLoss, valid_roc_auc
from ._checkpoint import EpochCheckpoint, ResumeFromCheckpoint
from ._checks import (
    check_sample_weight,
    check_targets,
)
from ._classifier_state import (
    check_saved_classifier,
    classifier_state,
    restore_classifier,
)
from ._feature_mode import fit_features, predict_proba_features
from ._features import (
    PretrainedFeatures,
    _BackboneParamsMixin,
)
from ._finetune import fit_finetune, predict_proba_finetune, split_validation
from ._images import check_images
from ._net import DeepCoralSkorchNet, SkorchNet
from ._param_docs import fill_param_docs
from ._persistence import load_model, save_model
from ._utils import (
    check_random_seed,
    resolve_device,
)

__all__ = ["PretrainedCNNClassifier"]

logger = logging.getLogger(__name__)

_MODES = ("finetune", "features")


class PretrainedCNNClassifier(
    _BackboneParamsMixin,
    NestedParamsMixin,
    DomainAwareMixin,
    ClassifierMixin,
    BaseEstimator,
):
    """Chest X-ray classifier by transfer learning from an ImageNet backbone.

    A torchvision (or timm) backbone pretrained on ImageNet has its final
    classification layer replaced by a new head with one output per class,
    optionally with hidden layers in between. In ``mode="finetune"`` the
    network is trained with skorch: first the new head alone for
    ``freeze_epochs`` epochs, then the whole network with the body at a lower
    learning rate (``lr * body_lr_factor``), under a warm-up and cosine
    schedule, with early stopping on the ROC AUC of an internal validation
    split made by patient when ``groups`` are given. In ``mode="features"``
    the frozen backbone embeds each image (:class:`PretrainedFeatures`) and
    ``final_estimator`` is fit on the embeddings, the recipe of Kermany et
    al. (2018).

    Parameters
    ----------
    %(backbone)s
    %(weights)s
    mode : {"finetune", "features"}, default="finetune"
        Fine-tune the network, or fit ``final_estimator`` on frozen features.
    %(image_size)s
    hidden_units : tuple of int, default=()
        Widths of hidden layers (ReLU) between the backbone and the new head.
    dropout : float, default=0.0
        Dropout before each layer of the head.
    max_epochs : int, default=10
        Training epochs (finetune mode).
    %(batch_size)s
    lr : float, default=1e-3
        Learning rate of the head (AdamW); the body gets ``lr *
        body_lr_factor``.
    freeze_epochs : int, default=1
        Epochs at the start during which only the new head trains.
    class_weight : dict, "balanced" or None, default="balanced"
        Weights of the classes in the loss (finetune) or in the final
        estimator (features). "balanced" weighs each class inversely to its
        frequency, so the model does not learn the training prevalence (74%
        pneumonia in Kermany et al.'s training split, 62.5% in their test
        split): use it when sensitivity and specificity matter equally and the
        prevalence where the model is used may differ. On the acquisition-shift
        proxy of ``benchmarks/accuracy.py`` it raised the specificity at 0.5 of
        finetune mode from 0.01-0.22 to 0.80-0.99 at equal or better ROC AUC
        (``docs/benchmarks.rst``). None trains on the raw prevalence, which
        suits a deployment with the same prevalence as the training data.
    augment : bool, "geometric", "acquisition", "framing" or callable, \
default="acquisition"
        Finetune mode, while training only. True (or "geometric"): random
        resized crops close to the full image, small rotations and shifts,
        brightness and contrast jitter; no horizontal flip (the heart is on
        the left). "acquisition": the same crops and moves, then the
        photometric changes of another acquisition pipeline (stronger
        brightness and contrast, gamma curves, blur or sharpening, noise,
        JPEG re-compression; ``sklearn_cxr._augment.acquisition_augmentation``);
        the default since it kept specificity under every simulated
        acquisition shift at no cost on clean images (:ref:`benchmarks`).
        "framing": "acquisition", then burned-in marker texts and
        collimation borders at random places, so that where a hospital
        prints its letters is no clue
        (``sklearn_cxr._augment.framing_augmentation``).
        Feature mode uses the photometric part of it on ``augment_copies``.
    augment_copies : int, default=0
        Feature mode: how many augmented copies of each training image
        (``augment``'s photometric part, no geometric moves) are embedded to
        train the final estimator beside the originals; fit embeds
        ``1 + augment_copies`` times as many images (at most 100 copies),
        prediction is unchanged.
        Off by default: on the shift proxy it helped only against the shifts
        it draws (:ref:`benchmarks`).
        A callable (e.g. a ``torchvision.transforms.v2`` transform) replaces
        the built-in augmentation: it receives the resized ``(C, H, W)``
        float image in [0, 1] and returns one of the same shape (the safe
        file format of :meth:`save` cannot store it). False: none.
    final_estimator : estimator or None, default=None
        Feature mode's classifier; None means ``LogisticRegression(
        C=0.01, max_iter=1000)`` (the strong penalty generalises better under
        acquisition shift, see :ref:`benchmarks`). Nested parameters such as
        ``final_estimator__C`` work with ``set_params`` and grid search even
        when this is None.
    %(device)s
    %(num_workers)s
    random_state : int, RandomState or None, default=None
        Seeds weights of the head, shuffling, augmentation and the validation
        split. Two CPU fits with the same seed give identical predictions.
        On CUDA, cuDNN's nondeterministic kernels and mixed precision
        (``amp``) make repeated fits differ slightly; see :ref:`reliability`.
    verbose : int, default=0
        When > 0, progress bars (per batch, on stderr) while fitting,
        embedding and predicting, and the per-epoch table (finetune; without
        colour codes where stdout is not a terminal).
    validation_fraction : float, "auto" or None, default="auto"
        Share of the training images held out (by patient when ``groups`` are
        passed to ``fit``) to monitor ROC AUC each epoch, stop early and
        restore the best epoch. None trains on everything for ``max_epochs``.
        "auto" holds out 0.1 when that makes at least 100 validation images
        (1,000 training images or more) and otherwise trains like None: the
        ROC AUC of a few dozen images is too noisy to pick an epoch (on 300
        real images a 30-image split restored the head-only first epoch; see
        ``docs/benchmarks.rst``).
    patience : int, default=3
        Epochs without improvement of the validation ROC AUC before stopping.
    body_lr_factor : float, default=0.1
        Learning rate of the pretrained body relative to ``lr``.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (checkpoints, schedules...). Their parameters
        can be set the skorch way, ``callbacks__<name>__<param>``.
    amp : {"auto", True, False}, default="auto"
        Mixed precision; "auto" enables it on CUDA.
    standardize : bool, default=True
        Feature mode: standardise the embeddings before ``final_estimator``.
    memory : str, joblib.Memory or None, default=None
        Feature mode: cache of embeddings (see :class:`PretrainedFeatures`).
    %(in_chans)s
    %(equalize)s
    %(detail_size)s
    accelerator : None, True, dict or accelerate.Accelerator, default=None
        Finetune mode: train data-parallel under Hugging Face Accelerate
        (skorch's ``AccelerateMixin``) on the devices of ``accelerate
        launch``: True for ``Accelerator()``, a dict of its keyword arguments
        (``{"mixed_precision": "bf16"}``, ``{"cpu": True}``) or an
        ``Accelerator``. Needs the ``distributed`` extra; see
        :ref:`distributed`. ``device`` and ``amp`` are then left to
        Accelerate.
    checkpoint_dir : str, os.PathLike or None, default=None
        Finetune mode: a folder where the weights, optimizer state,
        learning-rate schedule and history are saved after every epoch (each
        file written aside and renamed into place, so a killed process
        leaves a complete checkpoint). None saves nothing.
    resume : bool, default=False
        Finetune mode, with ``checkpoint_dir``: continue from the last epoch
        saved there, up to ``max_epochs`` epochs in all (``history_`` then
        holds the epochs before and after the interruption); a folder without
        a checkpoint starts from the first epoch. Pass the data and parameters
        of the interrupted fit: a checkpoint saved by another fit (other
        data, labels or parameters, e.g. another cross-validation fold) is
        refused. The resumed run is not bit-identical to an
        uninterrupted one: the data order restarts from ``random_state`` and
        early stopping's patience count restarts at the resumed epoch.
    compile : bool, default=False
        Finetune mode: compile the network with ``torch.compile`` (skorch's
        ``compile=True``). Worth it for long runs on CUDA; the first epoch
        pays the compilation (a C++ compiler is needed on the CPU).
    label_smoothing : float, default=0.0
        Finetune mode: label smoothing of the cross-entropy loss
        (``torch.nn.CrossEntropyLoss(label_smoothing=...)``), in [0, 1).
    ema : float or None, default=None
        Finetune mode: keep an exponential moving average of the weights
        (:class:`torch.optim.swa_utils.AveragedModel`, BatchNorm statistics
        included) with a time constant of ``ema`` epochs, so that it means
        the same on 300 or 5,000 images. Validation, early stopping and the
        fitted model use the averaged weights. None trains without it. A fit
        resumed from ``checkpoint_dir`` restarts the average.
    tta : bool or sequence of float, default=False
        Test-time augmentation, both modes: ``predict_proba`` averages the
        probabilities of centre crops keeping these fractions of each side
        (True: ``(1.0, 0.9)``), each resized to ``image_size``; it costs one
        inference per view. No flips: chest X-rays are not mirror-symmetric.
        Training and the internal validation split do not use it.
    adaptation : {"auto", None, "coral", "standardize", "adabn", "deepcoral"}, \
            default="auto"
        Label-free adaptation to a target site whose unlabelled images are
        passed to ``fit`` with a negative ``sample_domain`` (see
        :ref:`adaptation`). Feature mode: ``"coral"`` (skada's
        ``CORALAdapter``, needs the ``adapt`` extra) or ``"standardize"``
        (per-site standardisation of the embeddings); finetune mode:
        ``"adabn"`` (BatchNorm statistics re-estimated on the target) or
        ``"deepcoral"`` (Deep CORAL loss while training, then AdaBN).
        ``"auto"`` is ``"standardize"`` in feature mode and ``"adabn"`` in
        finetune mode, the best measured on the acquisition-shift proxy;
        None ignores the target images. Without target images nothing
        changes.
    coral_weight : float, default=1.0
        Weight of the Deep CORAL loss (``adaptation="deepcoral"``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, as given in ``y``.
    n_classes_ : int
    device_ : str
        Device the model was fitted on.
    net_ : skorch.NeuralNetClassifier
        Finetune mode: the fitted skorch net (``net_.history``).
    module_ : torch.nn.Module
        Finetune mode: the network (``body`` then ``head``).
    features_ : PretrainedFeatures
        Feature mode: the fitted embedding transformer.
    final_estimator_ : estimator
        Feature mode: the fitted final estimator.
    preprocessing_ : Preprocessing
        Both modes: the whole inference preprocessing (size, channels, mean,
        std, interpolation, equalisation), as used by :mod:`sklearn_cxr.export`.
    adaptation_ : dict
        Only after a fit with target images and an adaptation: the method,
        the target and source domains and the fitted adaptation state.

    See Also
    --------
    PretrainedFeatures : the frozen backbone as a transformer.

    Notes
    -----
    Interrupting a finetune ``fit`` (Ctrl-C, ``KeyboardInterrupt``) after at
    least one epoch keeps a usable model: the weights and history of the last
    completed epoch (a half-done epoch is dropped), or the best epoch when
    early stopping restores it. Interrupted before the first epoch ends,
    ``fit`` raises ``KeyboardInterrupt`` and the model stays as it was. A
    batch that runs out of memory raises :class:`torch.OutOfMemoryError`
    saying to lower ``batch_size`` or ``image_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 255, (8, 32, 32), dtype=np.uint8)
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 4)
    >>> clf = PretrainedCNNClassifier(backbone="resnet18", weights=None,
    ...     image_size=32, max_epochs=1, random_state=0)
    >>> clf.fit(X, y).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **PretrainedFeatures._parameter_constraints,
        "mode": [StrOptions(set(_MODES))],
        # each width is checked in fit (_check_param_details)
        "hidden_units": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "freeze_epochs": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "augment": [
            "boolean",
            StrOptions(set(AUGMENT_OPTIONS)),
            callable,
            Hidden(None),
        ],
        # each copy is one more embedding pass over the training images
        "augment_copies": [Interval(Integral, 0, 100, closed="both")],
        "final_estimator": [HasMethods(["fit"]), None],
        "validation_fraction": [
            Interval(Real, 0, 0.5, closed="neither"),
            StrOptions({"auto"}),
            None,
        ],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "body_lr_factor": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "callbacks": [list, None],
        "amp": [StrOptions({"auto"}), "boolean"],
        "standardize": ["boolean"],
        # an accelerate.Accelerator, recognised without importing accelerate
        "accelerator": [Options(bool, {True}), dict, HasMethods(["prepare"]), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "resume": ["boolean"],
        "compile": ["boolean"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "ema": [Interval(Real, 0, None, closed="neither"), None],
        # the crop fractions are checked in fit (_check_param_details)
        "tta": ["boolean", "array-like", Hidden(None)],
        # which methods suit which mode is checked in fit
        "adaptation": [
            StrOptions(
                {"auto"} | {m for ms in _adapt.ADAPTATIONS.values() for m in ms}
            ),
            None,
        ],
        "coral_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        backbone="resnet18",
        weights="DEFAULT",
        mode="finetune",
        image_size=224,
        hidden_units=(),
        dropout=0.0,
        max_epochs=10,
        batch_size=32,
        lr=1e-3,
        freeze_epochs=1,
        class_weight="balanced",
        augment="acquisition",
        augment_copies=0,
        final_estimator=None,
        device="auto",
        num_workers=0,
        random_state=None,
        verbose=0,
        validation_fraction="auto",
        patience=3,
        body_lr_factor=0.1,
        weight_decay=1e-4,
        callbacks=None,
        amp="auto",
        standardize=True,
        memory=None,
        in_chans=3,
        equalize=False,
        accelerator=None,
        checkpoint_dir=None,
        resume=False,
        compile=False,
        label_smoothing=0.0,
        ema=None,
        tta=False,
        adaptation="auto",
        coral_weight=1.0,
        detail_size="auto",
    ):
        self.backbone = backbone
        self.weights = weights
        self.mode = mode
        self.image_size = image_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.freeze_epochs = freeze_epochs
        self.class_weight = class_weight
        self.augment = augment
        self.augment_copies = augment_copies
        self.final_estimator = final_estimator
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.body_lr_factor = body_lr_factor
        self.weight_decay = weight_decay
        self.callbacks = callbacks
        self.amp = amp
        self.standardize = standardize
        self.memory = memory
        self.in_chans = in_chans
        self.equalize = equalize
        self.accelerator = accelerator
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.compile = compile
        self.label_smoothing = label_smoothing
        self.ema = ema
        self.tta = tta
        self.adaptation = adaptation
        self.coral_weight = coral_weight
        self.detail_size = detail_size

    def _check_param_details(self):
        """Checks that ``_parameter_constraints`` cannot express: the values
        inside ``hidden_units``, ``tta`` and ``callbacks``, booleans given as
        numbers, the file system, and parameters that depend on each other."""
        super()._check_param_details()
        if not all(
            isinstance(u, Integral) and not isinstance(u, bool) and u > 0
            for u in self.hidden_units
        ):
            raise ValueError(
                "hidden_units must be a tuple of positive integers, got "
                f"{self.hidden_units!r}."
            )
        check_tta(self.tta)
        if isinstance(self.augment_copies, bool):
            raise ValueError(
                "augment_copies must be a number of augmented copies >= 0 "
                f"(feature mode), got {self.augment_copies!r}."
            )
        if isinstance(self.ema, bool):
            raise ValueError(
                "ema must be None or a positive number of epochs (the time "
                f"constant of the weight average, e.g. 0.5), got {self.ema!r}."
            )
        self._named_callbacks()
        if self.checkpoint_dir is not None and os.path.isfile(self.checkpoint_dir):
            raise ValueError(
                f"checkpoint_dir={os.fspath(self.checkpoint_dir)!r} is a file; pass "
                "a folder (it is created if missing)."
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True needs checkpoint_dir: the folder in which the "
                "interrupted fit saved its epochs."
            )

    # --------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, groups=None, sample_weight=None, sample_domain=None):
        """Fit the classifier.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
            ``(n, H, W)`` or ``(n, H, W, C)`` images with ``C`` in {1, 3},
            uint8 (0-255) or float (0-1), or a sequence of image files (str or
            os.PathLike), PIL images or arrays of any sizes.
        y : array-like of shape (n_samples,)
            Labels of any type, at least two classes.
        groups : array-like of shape (n_samples,), default=None
            Patient ids; the internal validation split keeps each patient on
            one side.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-image weights of the loss (finetune) or of the final estimator.
        sample_domain : array-like of int or int, default=None
            skada's convention: the site of each image, >= 0 for a labelled
            source, < 0 for the unlabelled target site, whose labels are
            ignored (pass the masked label: -1, or ``"-1"``/None for string
            labels). The model adapts to that target (``adaptation``) and
            ``classes_`` holds the source labels only. None: every image is
            a labelled source.

        Returns
        -------
        self : PretrainedCNNClassifier
        """
        self._check_param_details()
        images = check_images(X)
        split = None
        if sample_domain is not None:
            all_images = images
            split, (images, y, groups, sample_weight) = _adapt.split_fit_inputs(
                images, y, sample_domain, groups, sample_weight
            )
        method = _adapt.resolve_adaptation(
            self.adaptation, self.mode, split is not None and split.has_target
        )
        adapt = None
        if method is not None:
            _adapt.check_deep_params(method, self.accelerator, self.coral_weight)
            _adapt.check_target_size(split)
            adapt = (method, split, all_images.take(split.target_idx))
        y = check_targets(y, len(images))
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(images):
                raise ValueError(
                    f"groups has {len(groups)} entries but X has {len(images)} "
                    "images; pass one patient id per image."
                )
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(images))
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has a single class ({classes.tolist()[0]!r}); a classifier needs "
                "at least 2 classes."
            )
        seed = check_random_seed(self.random_state)
        device = resolve_device(self.device)
        # Build into a new estimator state and commit only on success, so that
        # a refused or interrupted-before-training fit leaves the model as it was.
        if self.mode == "features":
            fitted = fit_features(
                self, images, y_encoded, classes, seed, sample_weight, adapt=adapt
            )
        else:
            fitted = fit_finetune(
                self, images, y_encoded, classes, seed, device, groups,
                sample_weight, adapt=adapt,
            )
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        self.__dict__.update(fitted)
        self.classes_ = classes
        self.n_classes_ = len(classes)
        return self

    def _split_validation(self, y_encoded, groups, seed):
        return split_validation(self.validation_fraction, y_encoded, groups, seed)

    # ----------------------------------------------------------------- predict
    def predict_proba(self, X, sample_domain=None):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
            Images of any size.
        sample_domain : array-like of int or int, default=None
            Site of each image, as in ``fit``. None: images of a model adapted
            to a target site are treated as that target; a source site's id
            (>= 0) treats them as that source. Ignored by a model fitted
            without adaptation.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "classes_")
        images = check_images(X)
        domains = _adapt.predict_domains(self, sample_domain, len(images))
        if domains is not None and self.mode_fitted_ == "finetune":
            return _adapt_finetune.predict_per_domain(self, images, domains)
        if self.mode_fitted_ == "features":
            return predict_proba_features(self, images, domains)
        return predict_proba_finetune(self, images)

    def predict(self, X, sample_domain=None):
        """Predicted labels, of the same type as ``y`` in fit.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
        sample_domain : array-like of int or int, default=None
            Site of each image (see :meth:`predict_proba`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X, sample_domain=sample_domain)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def mode_fitted_(self):
        """The mode the model was fitted in."""
        check_is_fitted(self, "classes_")
        return "features" if hasattr(self, "final_estimator_") else "finetune"

    @property
    def module_(self):
        """The fitted network (finetune mode)."""
        check_is_fitted(self, "net_")
        return self.net_.module_

    @property
    def history_(self):
        """skorch's per-epoch history (finetune mode)."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def save(self, path):
        """Save the fitted model to one file in the safe format (no pickle).

        Parameters are stored as JSON, tensors as safetensors and the fitted
        final estimator and scaler with skops; see :ref:`persistence`.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (a zip archive, e.g. ``model.cxr``).

        Returns
        -------
        path : str
        """
        return save_model(self, path)

    @classmethod
    def load(cls, path, *, trusted=None):
        """Load a model written by :meth:`save`, without unpickling.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.
        trusted : list of str, default=None
            Extra types to accept in the skops parts, e.g.
            ``["sklearn.tree._tree.Tree"]``; unknown types are refused.

        Returns
        -------
        model : PretrainedCNNClassifier
        """
        return load_model(path, expected_class=cls, trusted=trusted)

    def _validate_state_params(self):
        """Check the parameters of a model read from a file."""
        self._validate_params_values()

    def _get_state(self):
        """The fitted state, for :func:`~sklearn_cxr._persistence.save_model`."""
        check_is_fitted(self, "classes_")
        return classifier_state(self)

    @staticmethod
    def _check_saved_state(fitted, path):
        """Check the ``fitted`` part of a file before anything is built."""
        check_saved_classifier(fitted, path)

    def _set_state(self, fitted, tensors, parts):
        """Restore the fitted state that :meth:`_get_state` gave."""
        return restore_classifier(self, fitted, tensors, parts)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.device == "cuda"
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.classifier_tags.poor_score = True
        return tags

    def __getstate__(self):
        return self._pickle_state(())

    def __setstate__(self, state):
        features = state.get("features_")
        if "preprocessing_" not in state and features is not None:
            # feature mode of a version without preprocessing_: the embedder's
            state = {**state, "preprocessing_": features.preprocessing_}
        self._unpickle_state(state, ())
        net = state.get("net_")
        if net is not None:
            self.device_ = str(net.device)


PretrainedCNNClassifier.__doc__ = fill_param_docs(PretrainedCNNClassifier.__doc__)

# The names under which joblib pickles of earlier versions (the first release
# included) refer to these classes and functions; they must keep resolving.
_CXRNet = SkorchNet
_DeepCoralNet = DeepCoralSkorchNet
_FineTuneSchedule = FineTuneSchedule
_FreezeBody = FreezeBody
_StopOnNonFiniteLoss = StopOnNonFiniteLoss
_valid_roc_auc = valid_roc_auc
_EpochCheckpoint = EpochCheckpoint
_ResumeFromCheckpoint = ResumeFromCheckpoint
_Chain = Chain
_ViewCollection = ViewCollection
