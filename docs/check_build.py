"""Check the built HTML documentation; exit non-zero, saying why, if it is incomplete.

Run after the build::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python docs/check_build.py [--build-dir docs/_build/html] [--max-example-seconds S]

What it checks:

- the main pages exist (index, install, quickstart, user guide, API
  reference, gallery index);
- every gallery example of ``examples/`` has its page; every ``plot_*.py``
  example ran (its page shows its running time, no traceback) and its page
  shows its figures: at least one, each an ``<img>`` whose PNG file exists in
  ``_images/``, and every figure the example drew
  (``docs/auto_examples/**/images/``) is among them;
- every public name (``__all__``) of the public modules has its API page, and
  the API reference links to it.

It prints the running time of each example, the slowest first.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
EXAMPLES = REPO / "examples"

MAIN_PAGES = [
    "index.html",
    "install.html",
    "quickstart.html",
    "user_guide.html",
    "cli.html",
    "api.html",
    "auto_examples/index.html",
]

# Modules whose ``__all__`` must each have an API page.
PUBLIC_MODULES = [
    "sklearn_cxr",
    "sklearn_cxr.datasets",
    "sklearn_cxr.inspection",
    "sklearn_cxr.tuning",
]
NOT_DOCUMENTED = {"__version__"}

_RUNNING_TIME = re.compile(
    r"Total running time of the script:.*?\((\d+) minutes? ([\d.]+) seconds?\)",
    re.S,
)


class _ImageCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)


def image_sources(html):
    """The ``src`` of every ``<img>`` of an HTML page."""
    parser = _ImageCollector()
    parser.feed(html)
    return parser.sources


def example_sources():
    """Gallery example scripts, as sphinx-gallery sees them."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.py")):
        rel = path.relative_to(EXAMPLES)
        if any(part.startswith(("_", ".")) for part in rel.parts):
            continue
        if len(rel.parts) > 1 and not _has_header(path.parent):
            continue  # sphinx-gallery skips sub-folders without a README
        found.append(rel)
    return found


def _has_header(folder):
    return any((folder / name).is_file() for name in ("README.rst", "README.txt"))


def check_main_pages(build):
    return [
        f"missing page {page}: was the build complete?"
        for page in MAIN_PAGES
        if not (build / page).is_file()
    ]


def check_examples(build, max_seconds=None):
    problems, times = [], {}
    scripts = example_sources()
    if not scripts:
        problems.append(f"no gallery examples found under {EXAMPLES}")
    for rel in scripts:
        page = build / "auto_examples" / rel.with_suffix(".html")
        if not page.is_file():
            problems.append(f"{rel}: no gallery page {page.relative_to(build)}")
            continue
        html = page.read_text(encoding="utf-8")
        if not rel.name.startswith("plot_"):
            continue  # shown, not run
        match = _RUNNING_TIME.search(html)
        if match is None:
            problems.append(
                f"{rel}: the page shows no running time, so the example did not "
                "run (SKLEARN_CXR_DOCS_NO_GALLERY set, or plot_gallery off?)"
            )
        else:
            times[str(rel)] = 60 * int(match.group(1)) + float(match.group(2))
        if "Traceback (most recent call last)" in html:
            problems.append(f"{rel}: the example raised an error (see its page)")
        stem = rel.stem
        figures, referenced = [], set()
        for src in image_sources(html):
            name = Path(unquote(urlparse(src).path)).name
            if not (name.startswith(f"sphx_glr_{stem}_") and name.endswith(".png")):
                continue
            if "thumb" in name:
                continue
            referenced.add(name)
            target = (page.parent / unquote(urlparse(src).path)).resolve()
            if "_images" not in target.parts:
                problems.append(f"{rel}: figure {src} is not under _images/")
            elif not target.is_file():
                problems.append(f"{rel}: figure {src} points to a missing file")
            else:
                figures.append(target)
        drawn = sorted(
            path.name
            for path in (DOCS / "auto_examples" / rel.parent / "images").glob(
                f"sphx_glr_{stem}_[0-9]*.png"
            )
        )
        for name in drawn:
            if name not in referenced:
                problems.append(
                    f"{rel}: figure {name} was drawn but the page does not show it"
                )
        if not referenced:
            problems.append(
                f"{rel}: its page shows no figure (no <img> of a "
                f"sphx_glr_{stem}_*.png in _images/); a plot_ example must draw "
                "at least one matplotlib figure"
            )
        if max_seconds is not None and times.get(str(rel), 0) > max_seconds:
            problems.append(
                f"{rel}: ran {times[str(rel)]:.0f} s, over the budget of "
                f"{max_seconds:.0f} s per example"
            )
    return problems, times


def check_api(build):
    problems = []
    api_page = build / "api.html"
    api_html = api_page.read_text(encoding="utf-8") if api_page.is_file() else ""
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            problems.append(f"cannot import {module_name} to list its names: {exc}")
            continue
        for name in getattr(module, "__all__", ()):
            if name in NOT_DOCUMENTED:
                continue
            qualified = f"{module_name}.{name}"
            page = build / "gen_modules" / f"{qualified}.html"
            if not page.is_file():
                problems.append(
                    f"API: no page for {qualified}; add it to an autosummary "
                    "list in docs/api.rst"
                )
            elif f"gen_modules/{qualified}.html" not in api_html:
                problems.append(f"API: docs/api.rst does not link to {qualified}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=DOCS / "_build" / "html",
        help="the HTML output folder (default: docs/_build/html)",
    )
    parser.add_argument(
        "--max-example-seconds",
        type=float,
        default=None,
        help="fail when one example ran longer than this",
    )
    args = parser.parse_args(argv)
    build = args.build_dir.resolve()
    if not (build / "index.html").is_file():
        print(
            f"check_build: {build / 'index.html'} does not exist; build the docs "
            "first: python -m sphinx -W --keep-going -b html docs docs/_build/html",
            file=sys.stderr,
        )
        return 1

    problems = check_main_pages(build)
    example_problems, times = check_examples(build, args.max_example_seconds)
    problems += example_problems
    problems += check_api(build)

    if times:
        print("gallery running times (s):")
        for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
            print(f"  {seconds:7.1f}  {name}")
        print(f"  {sum(times.values()):7.1f}  total")
    if problems:
        print(f"check_build: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    n_examples = len(example_sources())
    print(f"check_build: OK ({n_examples} gallery examples, API pages complete)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
