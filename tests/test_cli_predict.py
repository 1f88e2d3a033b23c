"""sklearn-cxr predict: CSV output, --output, --skip-bad, plain messages."""

import csv
import io
import json

import numpy as np
import pytest
from _helpers import tiny_resnet_classifier
from PIL import Image

from sklearn_cxr._cli import EXIT_SKIPPED


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory, make_blobs):
    root = tmp_path_factory.mktemp("predict")
    X, y, _ = make_blobs(n=24, size=32)
    clf = tiny_resnet_classifier("features").fit(X, y)
    path = root / "model.cxr"
    clf.save(path)
    # hostile but legal file names: tab, newline, comma, quote, CR, spaces
    names = ["plain.png", "tab\there.png", "new\nline.png", "comma,quote\".png",
             "cr\rx.png", " lead space.png"]
    files = []
    for name, image in zip(names, X[:6]):
        Image.fromarray(image).save(root / name)
        files.append(str(root / name))
    return path, files, clf


def _read_csv(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_to_stdout_reads_back_one_row_per_image(model_and_images, cli):
    model, files, clf = model_and_images
    status, out, err = cli(["predict", model, *files, "-q"])
    assert status == 0, err
    rows = _read_csv(out)
    assert rows[0] == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "threshold"]
    assert [r[0] for r in rows[1:]] == files
    proba = clf.predict_proba(files)
    for row, p in zip(rows[1:], proba):
        assert len(row) == 5
        np.testing.assert_allclose([float(row[2]), float(row[3])], p, rtol=1e-6)
        assert row[1] == ("PNEUMONIA" if p[1] >= 0.5 else "NORMAL")
        assert row[4] == "0.5"


def test_output_file_and_threshold_column(model_and_images, tmp_path, cli):
    model, files, _ = model_and_images
    out_file = tmp_path / "pred.csv"
    status, out, err = cli(
        ["predict", model, *files, "--output", out_file, "--threshold", "0", "-q"],
    )
    assert status == 0, err
    assert out == ""
    assert f"wrote 6 predictions to {out_file}" in err
    with open(out_file, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == files
    # threshold 0: every image is called positive, whatever its probability
    assert {r["label"] for r in rows} == {"PNEUMONIA"}
    assert {r["threshold"] for r in rows} == {"0.0"}
    status, _, err = cli(
        ["predict", model, files[0], "--output", tmp_path / "no" / "p.csv"],
    )
    assert status == 1 and "the folder of --output" in err


def test_json_stays(model_and_images, cli):
    model, files, _ = model_and_images
    status, out, err = cli(["predict", model, *files[:2], "--json", "-q"])
    assert status == 0, err
    rows = json.loads(out)
    assert [r["path"] for r in rows] == files[:2]
    for row in rows:
        assert set(row["probabilities"]) == {"NORMAL", "PNEUMONIA"}
        assert row["threshold"] == 0.5


def test_skip_bad_predicts_the_rest(model_and_images, tmp_path, cli):
    model, files, _ = model_and_images
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")
    argv = ["predict", model, files[0], broken, files[1], empty, "-q"]
    # without --skip-bad one bad file stops the command, and says how to go on
    status, out, err = cli(argv)
    assert status == 1 and out == ""
    assert "broken.png" in err and "--skip-bad" in err
    assert "np.str_" not in err
    status, out, err = cli([*argv, "--skip-bad"])
    assert status == EXIT_SKIPPED == 3
    rows = _read_csv(out)
    assert [r[0] for r in rows[1:]] == files[:2]
    skipped = [line for line in err.splitlines() if "skipped " in line]
    assert len(skipped) == 3  # two files and the summary
    assert f"skipped {broken}: " in skipped[0]
    assert "is not a JPEG, PNG, TIFF or BMP image" in skipped[0]
    assert f"skipped {empty}: " in skipped[1] and "empty" in skipped[1]
    assert "2 of 4 images skipped (exit status 3)" in skipped[2]
    # nothing readable at all: an error, not an empty success
    status, out, err = cli(["predict", model, broken, "--skip-bad", "-q"])
    assert status == 1 and "none of the 1 images could be read" in err


def test_threshold_needs_binary_model(tmp_path, cli, make_blobs):
    X, _, _ = make_blobs(n=24, size=32)
    y = np.array(["normal", "bacterial", "viral"] * 8)
    clf = tiny_resnet_classifier("features").fit(X, y)
    clf.save(tmp_path / "m3.cxr")
    Image.fromarray(X[0]).save(tmp_path / "a.png")
    status, out, err = cli(["predict", tmp_path / "m3.cxr", tmp_path / "a.png",
                            "-q"])
    assert status == 0, err
    rows = _read_csv(out)
    assert rows[0] == ["path", "label", "p_bacterial", "p_normal", "p_viral",
                       "threshold"]
    assert rows[1][-1] == ""  # the most probable class, no threshold
    status, _, err = cli(["predict", tmp_path / "m3.cxr", tmp_path / "a.png",
                          "--threshold", "0.3"])
    assert status == 1 and "--threshold needs a binary model" in err


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory, make_blobs):
    """Factory: a saved binary model of the blobs with other class names."""
    root = tmp_path_factory.mktemp("relabelled")
    X, y, _ = make_blobs(n=24, size=32)
    files = []
    for i, image in enumerate(X):
        Image.fromarray(image).save(root / f"{i:02d}.png")
        files.append(str(root / f"{i:02d}.png"))

    def make(negative, positive):
        names = np.where(y == "PNEUMONIA", positive, negative)
        clf = tiny_resnet_classifier("features").fit(X, names)
        path = root / f"{negative}-{positive}.cxr"
        clf.save(path)
        return path, files, names, clf

    return make


def _cli_labels(cli, argv):
    status, out, err = cli(argv)
    assert status == 0, err
    return np.array([row[1] for row in _read_csv(out)[1:]])


def test_predict_threshold_and_evaluate_agree_on_the_positive_class(
    relabelled, cli
):
    from sklearn.metrics import confusion_matrix

    from sklearn_cxr import evaluate_classifier

    model, files, y, clf = relabelled("healthy", "sick")
    assert clf.classes_.tolist() == ["healthy", "sick"]
    # a threshold inside the scores, so that both calls occur
    threshold = float(np.median(clf.predict_proba(files)[:, 1]))
    labels = _cli_labels(
        cli, ["predict", model, *files, "--threshold", threshold, "-q"]
    )
    report = evaluate_classifier(clf, files, y, threshold=threshold, n_bootstrap=0)
    assert report.labels == ("healthy", "sick")
    assert 0 < (labels == "sick").sum() < len(labels)
    np.testing.assert_array_equal(
        report.confusion_matrix,
        confusion_matrix(y, labels, labels=["healthy", "sick"]),
    )


def test_unknown_class_names_are_refused_alike_until_named(relabelled, cli):
    from sklearn.metrics import confusion_matrix

    from sklearn_cxr import evaluate_classifier

    model, files, y, clf = relabelled("dog", "cat")  # "cat" is the disease
    status, _, err = cli(["predict", model, *files, "--threshold", "0.5", "-q"])
    assert status == 1
    assert "cannot tell which of the classes cat, dog is the disease" in err
    assert "--pos-label" in err
    with pytest.raises(ValueError, match="Cannot tell which label is positive"):
        evaluate_classifier(clf, files, y, n_bootstrap=0)
    # without a threshold, predict takes the most probable class
    assert _cli_labels(cli, ["predict", model, *files, "-q"]).tolist() == (
        clf.predict(files).tolist()
    )
    labels = _cli_labels(
        cli,
        ["predict", model, *files, "--threshold", "0.5", "--pos-label", "cat", "-q"],
    )
    report = evaluate_classifier(clf, files, y, positive_label="cat", n_bootstrap=0)
    assert report.labels == ("dog", "cat")
    np.testing.assert_array_equal(
        report.confusion_matrix, confusion_matrix(y, labels, labels=["dog", "cat"])
    )
    status, _, err = cli(["predict", model, files[0], "--pos-label", "bird"])
    assert status == 1
    assert "--pos-label bird is not a class of the model" in err
    assert "its classes are cat, dog" in err


def test_messages_show_plain_paths(model_and_images, tmp_path):
    from sklearn_cxr import read_image

    _, files, clf = model_and_images
    broken = tmp_path / "IM-9999-0001.jpeg"
    broken.write_bytes(b"\xff\xd8 truncated")
    paths = np.array([files[0], str(broken)])  # as load_chest_xray returns them
    with pytest.raises(OSError) as info:
        read_image(paths[1])
    assert "np.str_" not in str(info.value) and str(broken) in str(info.value)
    with pytest.raises(OSError) as info:
        clf.predict_proba(paths)
    assert "np.str_" not in str(info.value) and str(broken) in str(info.value)
