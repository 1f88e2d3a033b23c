"""Sphinx configuration of the sklearn_cxr documentation.

Build (warnings are errors, as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python docs/check_build.py

The gallery (``examples/``) runs during the build on synthetic images, on the
CPU, with small networks and a few epochs. Point ``SKLEARN_CXR_WEIGHTS`` at the
offline ImageNet EfficientNet-Lite0 checkpoint to let the examples that can use
pretrained weights use them (by default the file is looked for where the tests
look: ``$SKLEARN_CXR_SHARED/weights/`` or ``../shared/weights/``); without it
they train from random weights.
``SKLEARN_CXR_DOCS_NO_GALLERY=1`` skips running the examples (a fast build to
proofread the prose; the gallery pages then have no figures and
``check_build.py`` fails on them).
"""

import os
import re
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from sphinx.util import logging as sphinx_logging  # noqa: E402

import sklearn_cxr  # noqa: E402

_logger = sphinx_logging.getLogger("sklearn_cxr.docs")

# ---------------------------------------------------------------- project info
project = "sklearn-cxr"
author = "sklearn_cxr developers"
copyright = "2026, sklearn_cxr developers"
release = sklearn_cxr.__version__
version = ".".join(release.split(".")[:2])

# -------------------------------------------------------------- general setup
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "check_build.py",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/**/*.ipynb",
    "auto_examples/**/*.py",
]
root_doc = "index"
default_role = "literal"
nitpicky = False

# Stub pages of every public name, one page each, under gen_modules/.
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"

# numpydoc renders the docstrings; the member tables of the class pages come
# from the autosummary templates in _templates/, not from numpydoc.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -------------------------------------------------------------------- gallery
sys.path.insert(0, str(DOCS))  # gallery_order.py

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": "/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "subsection_order": "gallery_order.subsection_key",
    "within_subsection_order": "gallery_order.example_key",
    "doc_module": ("sklearn_cxr",),
    "backreferences_dir": "gen_modules/backreferences",
    "plot_gallery": str(not os.environ.get("SKLEARN_CXR_DOCS_NO_GALLERY")),
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "min_reported_time": 0,
    "remove_config_comments": True,
    "show_memory": False,
    "download_all_examples": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "expected_failing_examples": [],
    "write_computation_times": True,
}

# The examples run on the CPU, quietly and deterministically.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "agg")
# Offline ImageNet weights for the examples: SKLEARN_CXR_WEIGHTS, else the
# shared folder the tests use (SKLEARN_CXR_SHARED, else ../shared beside the
# checkout), else none (random weights).
_SHARED_WEIGHTS = (
    Path(os.environ.get("SKLEARN_CXR_SHARED", DOCS.parent.parent / "shared"))
    / "weights"
    / "efficientnet_lite0_imagenet_timm.pth"
)
if "SKLEARN_CXR_WEIGHTS" not in os.environ and _SHARED_WEIGHTS.is_file():
    try:
        import timm  # noqa: F401
    except ImportError:
        pass
    else:
        os.environ["SKLEARN_CXR_WEIGHTS"] = str(_SHARED_WEIGHTS)
_logger.info(
    "sklearn_cxr docs: gallery examples use "
    + (
        f"the ImageNet weights {os.environ['SKLEARN_CXR_WEIGHTS']}"
        if os.environ.get("SKLEARN_CXR_WEIGHTS")
        else "random weights (set SKLEARN_CXR_WEIGHTS for ImageNet ones)"
    )
)

# One torch thread by default: on a shared 2-core machine the examples took
# 4-5x less CPU time with 1 thread than with 2 (threads spin while waiting for
# each other). SKLEARN_CXR_DOCS_THREADS=N uses N threads on a quiet machine.
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("SKLEARN_CXR_DOCS_THREADS", "1")))
warnings.filterwarnings(
    "ignore",
    message="Matplotlib is currently using agg",
    category=UserWarning,
)

# -------------------------------------------------------------------- output
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-cxr {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The left sidebar lists the whole site on every page (the theme's own lists
# only a page's sub-pages: empty on install, quickstart, cli...).
html_sidebars = {"**": ["sidebar-site-nav"]}
html_context = {"default_mode": "light"}
html_show_sourcelink = True
html_copy_source = True


# --------------------------------------------------------------- command line
# The help of each command, written from the parser itself at every build so
# that cli.rst never drifts from the code.
def _write_cli_help():
    import argparse

    from sklearn_cxr._cli import build_parser

    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal width
    out = DOCS / "gen_modules" / "cli"
    out.mkdir(parents=True, exist_ok=True)
    parser = build_parser()
    helps = {"sklearn-cxr": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                helps[name] = sub.format_help()
    for name, text in helps.items():
        path = out / f"{name}.txt"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


_write_cli_help()


# ---------------------------------------------------------------- docstrings
# Methods inherited from scikit-learn (get_params, score, set_fit_request...)
# keep scikit-learn's docstrings, whose :ref: and :term: roles point into
# scikit-learn's own documentation. Without network access intersphinx cannot
# resolve them, so they are shown as plain text.
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")


def _plain_sklearn_roles(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("sklearn.") and module != "sklearn":
        return
    for i, line in enumerate(lines):
        lines[i] = _SKLEARN_ROLE.sub(
            lambda m: f"*{(m.group(1) or m.group(2)).strip()}*", line
        )


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_roles)
