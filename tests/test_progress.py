"""Progress bars while a person waits; silent at verbose=0; no colour codes."""

import numpy as np
import pytest
from _helpers import tiny_params, tiny_resnet_classifier

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures


def _clf(**params):
    return PretrainedCNNClassifier(**tiny_params(**params))


def test_finetune_fit_and_predict_show_bars(blobs, capfd):
    X, y, groups = blobs
    clf = _clf(
        mode="finetune", max_epochs=2, verbose=1, validation_fraction=0.25
    ).fit(X, y, groups=groups)
    out, err = capfd.readouterr()
    # skorch's per-batch bar on stderr; the epoch table on stdout
    assert "it/s" in err or "s/it" in err
    assert "train_loss" in out and "valid_auc" in out
    # not a terminal here: no raw colour codes in the table
    assert "\x1b[" not in out
    proba = clf.predict_proba(X)
    out, err = capfd.readouterr()
    assert "Predicting" in err and "5/5" in err
    clf.set_params(verbose=0)
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_finetune_is_silent_at_verbose_0(blobs, capfd):
    X, y, groups = blobs
    _clf(mode="finetune", max_epochs=1).fit(X, y, groups=groups)
    assert capfd.readouterr() == ("", "")


def test_feature_mode_shows_embedding_bar(blobs, capfd):
    X, y, _ = blobs
    clf = _clf(mode="features", verbose=1).fit(X, y)
    _, err = capfd.readouterr()
    assert "Embedding images" in err
    clf.predict(X)
    _, err = capfd.readouterr()
    assert "Embedding images" in err and "5/5" in err
    PretrainedFeatures(**tiny_params()).fit(X)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_bars_on_by_default_off_with_q(quiet, blobs, tmp_path, capfd):
    from PIL import Image

    from sklearn_cxr._cli import main

    X, y, _ = blobs
    # the safe format needs a named backbone
    clf = tiny_resnet_classifier("finetune").fit(X, y)
    clf.save(tmp_path / "m.cxr")
    for i in range(3):
        Image.fromarray(X[i]).save(tmp_path / f"{i}.png")
    capfd.readouterr()
    argv = ["predict", str(tmp_path / "m.cxr"), str(tmp_path)]
    assert main(argv + (["-q"] if quiet else [])) == 0
    _, err = capfd.readouterr()
    assert ("Predicting" in err) is not quiet
