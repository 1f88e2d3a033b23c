"""Chest X-ray data sets: loaders, checked fetchers and a synthetic generator.

In the style of :mod:`sklearn.datasets`: ``load_*`` reads files you have,
``fetch_*`` downloads, verifies and caches official files under
:func:`get_data_home`, ``make_*`` generates data.
"""

from ._base import (
    ChecksumError,
    UnsafeArchiveError,
    clear_data_home,
    get_data_home,
)
from ._chest_xray import fetch_chest_xray, load_chest_xray
from ._medmnist import fetch_pneumoniamnist, load_pneumoniamnist
from ._sample import load_sample_chest_xrays
from ._shift import simulate_acquisition
from ._synthetic import make_chest_xrays

__all__ = [
    "load_chest_xray",
    "load_sample_chest_xrays",
    "fetch_chest_xray",
    "fetch_pneumoniamnist",
    "load_pneumoniamnist",
    "make_chest_xrays",
    "simulate_acquisition",
    "get_data_home",
    "clear_data_home",
    "ChecksumError",
    "UnsafeArchiveError",
]
