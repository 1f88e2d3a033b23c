"""sklearn_cxr: scikit-learn compatible transfer learning for chest X-rays."""

from ._backbones import WeightsUnavailableError, list_backbones
from ._classifier import PretrainedCNNClassifier
from ._evaluation import ClinicalReport, clinical_report
from ._features import PretrainedFeatures
from ._images import ImageReadError, read_image
from ._persistence import ModelFileError
from ._preprocessing import Preprocessing
from ._report import evaluate_classifier

__version__ = "0.1.0"

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
