"""Order of the gallery: sections and examples, for ``docs/conf.py``.

A module of its own so that sphinx-gallery gets the sort keys by name (a
function stored in ``conf.py`` would make Sphinx's configuration cache warn).
"""

import os
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Sections of the gallery, in this order; any other sub-folder comes after.
KNOWN_SECTIONS = [
    "model_selection", "inspection", "datasets", "tuning", "deploy", "distributed"
]

# Examples named here come first in their section, in this order; then A-Z.
FIRST_EXAMPLES = [
    "plot_quickstart.py",
    "plot_feature_vs_finetune.py",
    "plot_grouped_cv.py",
    "plot_grid_search.py",
    "plot_threshold_tuning.py",
    "plot_save_load.py",
    "plot_gradcam.py",
]


def subsection_key(path):
    """Sort key of a gallery sub-folder (a path relative to ``docs/``)."""
    name = os.path.basename(os.path.normpath(str(path)))
    if name in KNOWN_SECTIONS:
        return (KNOWN_SECTIONS.index(name), name)
    return (len(KNOWN_SECTIONS), name)


def example_key(filename):
    """Sort key of an example file within its section."""
    name = os.path.basename(str(filename))
    if name in FIRST_EXAMPLES:
        return (FIRST_EXAMPLES.index(name), name)
    return (len(FIRST_EXAMPLES), name)
