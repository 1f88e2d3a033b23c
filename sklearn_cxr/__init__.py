"""sklearn_cxr: scikit-learn compatible transfer learning for chest X-rays."""

from ._backbones import list_backbones
from ._classifier import PretrainedCNNClassifier
from ._evaluation import ClinicalReport, clinical_report
from ._features import PretrainedFeatures
from ._images import read_image
from ._preprocessing import Preprocessing
from ._report import evaluate_classifier
from ._version import __version__
from .exceptions import ImageReadError, ModelFileError, WeightsUnavailableError

__all__ = [
    "PretrainedCNNClassifier",
    "PretrainedFeatures",
    "list_backbones",
    "read_image",
    "ImageReadError",
    "WeightsUnavailableError",
    "ModelFileError",
    "Preprocessing",
    "clinical_report",
    "evaluate_classifier",
    "ClinicalReport",
    "__version__",
]
