"""Hyper-parameter search with Optuna (the optional ``tuning`` extra).

Importing this package does not import Optuna; the functions do, and say how
to install it when it is missing: ``pip install 'sklearn-cxr[tuning]'``.
"""

from ._pruning import OptunaPruningCallback
from ._spaces import (
    backbone_space,
    default_search_space,
    features_space,
    finetune_space,
    image_size_space,
)
from ._tune import tune

__all__ = [
    "tune",
    "default_search_space",
    "finetune_space",
    "features_space",
    "image_size_space",
    "backbone_space",
    "OptunaPruningCallback",
]
