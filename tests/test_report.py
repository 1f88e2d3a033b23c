"""The report: evaluate_classifier's figures and report.json, and the
self-contained page of ``sklearn-cxr evaluate --report DIR``."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin

from sklearn_cxr import __version__, evaluate_classifier
from sklearn_cxr._cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _write_split(folder, n_per_class, rng):
    for i in range(n_per_class):
        normal = rng.randint(0, 140, (32, 32), dtype=np.uint8)
        sick = rng.randint(0, 140, (32, 32), dtype=np.uint8)
        sick[8:24, 8:24] = 255
        patient = i // 2
        os.makedirs(folder / "NORMAL", exist_ok=True)
        os.makedirs(folder / "PNEUMONIA", exist_ok=True)
        Image.fromarray(normal).save(
            folder / "NORMAL" / f"IM-{patient:04d}-{i % 2 + 1:04d}.png"
        )
        Image.fromarray(sick).save(
            folder / "PNEUMONIA" / f"person{patient}_bacteria_{i}.png"
        )


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """Train a tiny model with the CLI, then evaluate with --report."""
    root = tmp_path_factory.mktemp("cxr")
    rng = np.random.RandomState(0)
    _write_split(root / "data" / "train", 8, rng)
    _write_split(root / "data" / "test", 6, rng)
    model = root / "model.cxr"
    argv = ["train", root / "data", "--out", model, "--weights", "none",
            "--mode", "features", "--image-size", 32,
            "--batch-size", 8, "-q"]
    assert main([str(a) for a in argv]) == 0
    out = root / "report"
    argv = ["evaluate", model, root / "data", "--report", out,
            "--n-bootstrap", 50, "--threshold", "0.3", "-q"]
    assert main([str(a) for a in argv]) == 0
    return out


def test_page_is_self_contained(report_dir):
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    saved = json.loads((report_dir / "report.json").read_text())
    # every figure the evaluation wrote is embedded, none is linked
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(saved["figures"]) >= 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"(https?:|file:|//)", page)
    assert "<script" not in page
    # metrics with their intervals, as in report.json
    for name, values in saved["metrics"].items():
        row = re.search(
            rf"<td>{name.replace('_', ' ')}</td><td class=\"num\">([^<]*)</td>"
            rf"<td class=\"num\">\[([^,]*), ([^\]]*)\]</td>",
            page,
        )
        assert row, name
        shown = [float(v) if v != "n/a" else np.nan for v in row.groups()]
        want = [values["value"], values["ci_low"], values["ci_high"]]
        np.testing.assert_allclose(shown, want, atol=5e-4)
    tn, fp = saved["confusion_matrix"][0]
    assert f'<td class="num">{tn}</td>\n<td class="num">{fp}</td>' in page.replace(
        "</td><td", "</td>\n<td"
    )
    # the model's metadata
    for text in ("resnet18", "NORMAL, PNEUMONIA", f"{__version__}", "features",
                 "Training data", "UTC", "at least 0.3", "12 images, 6 patients"):
        assert text in page, text
    assert "<td>16 images</td>" in page  # the training split's size


def test_page_escapes_labels(tmp_path):
    """Labels come from folder names: they are text, never markup."""
    from sklearn_cxr._evaluation import clinical_report
    from sklearn_cxr._report import write_html_report

    report = clinical_report(
        np.array(["<b>no</b>", "<script>x</script>"] * 5),
        np.linspace(0, 1, 10),
        positive_label="<script>x</script>",
        n_bootstrap=20,
        random_state=0,
    )
    page = open(write_html_report(tmp_path, report, model=None)).read()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_training_size_of_finetune_models():
    from _helpers import TinyNet

    from sklearn_cxr import PretrainedCNNClassifier
    from sklearn_cxr._report import _training_size

    X = np.random.RandomState(0).randint(0, 255, (12, 32, 32), dtype=np.uint8)
    y = np.array(["a", "b"] * 6)
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, image_size=32, max_epochs=1,
        batch_size=4, validation_fraction=0.25, random_state=0,
    ).fit(X, y)
    assert _training_size(clf) == "9 images (+ 3 for validation)"
    assert _training_size(object()) == "not recorded in the model"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_page_renders_in_chromium(report_dir, tmp_path):
    """A real headless Chromium loads the page and decodes every figure."""
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    # a copy with a probe script that writes what the browser decoded
    probe = (
        "<script>window.addEventListener('load', () => {"
        "const sizes = Array.from(document.images).map("
        "i => [i.naturalWidth, i.naturalHeight, i.complete]);"
        "document.body.setAttribute('data-images', JSON.stringify(sizes));"
        "document.body.setAttribute('data-tables', document.querySelectorAll("
        "'table').length);});</script>"
    )
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    flags = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
    ]
    result = subprocess.run(
        flags + ["--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    match = re.search(r"data-images=\"([^\"]*)\"", result.stdout)
    assert match, result.stderr[-2000:]
    sizes = json.loads(match.group(1).replace("&quot;", '"'))
    assert len(sizes) == len(re.findall(r"<img ", page)) >= 2
    for width, height, complete in sizes:
        assert complete and width > 100 and height > 100
    assert 'data-tables="3"' in result.stdout
    # and a screenshot of the page as a person sees it
    shot = tmp_path / "page.png"
    subprocess.run(
        flags + [f"--screenshot={shot}", "--window-size=1000,2400",
                 (report_dir / "index.html").as_uri()],
        capture_output=True, timeout=180, check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1000)
    assert pixels.std() > 10  # not a blank page


class _FixedModel(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities are given; X are row indices."""

    def __init__(self, classes, proba):
        self.classes = classes
        self.proba = proba

    def fit(self, X=None, y=None):
        self.classes_ = np.asarray(self.classes)
        return self

    def predict_proba(self, X):
        return np.asarray(self.proba)[np.asarray(X)]


def test_evaluate_classifier_binary_and_subtypes(tmp_path):
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    model = _FixedModel(["NORMAL", "PNEUMONIA"], proba).fit()
    y = np.array(["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"])
    report = evaluate_classifier(model, np.arange(4), y, n_bootstrap=0)
    assert report.confusion_matrix.tolist() == [[1, 1], [1, 1]]
    # three classes: disease is 1 - P(normal)
    proba3 = np.array([[0.8, 0.1, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    model3 = _FixedModel(["normal", "bacterial", "viral"], proba3).fit()
    y3 = np.array(["normal", "viral", "bacterial"])
    report3 = evaluate_classifier(
        model3, np.arange(3), y3, n_bootstrap=0, report_dir=tmp_path
    )
    assert report3.labels == ("normal", "PNEUMONIA")
    assert report3.confusion_matrix.tolist() == [[1, 0], [0, 2]]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["figures"] == {
        "roc_curve": "roc_curve.png",
        "confusion_matrix": "confusion_matrix.png",
    }
    for name in saved["figures"].values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _FixedModel(["cat", "dog", "bird"], proba3).fit()
    with pytest.raises(ValueError, match="none is 'NORMAL'"):
        evaluate_classifier(bad, np.arange(3), ["cat", "dog", "bird"])
