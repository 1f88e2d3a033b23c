"""Clinical report: point estimates, bootstrap intervals, patients, figures."""

import ast
import inspect
import json

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from sklearn_cxr import clinical_report
from sklearn_cxr._evaluation import _point_metrics, _weighted_metrics


def _scores(n=200, seed=0):
    rng = np.random.RandomState(seed)
    y = np.array(["NORMAL", "PNEUMONIA"])[rng.randint(0, 2, n)]
    score = np.clip(0.35 * (y == "PNEUMONIA") + 0.65 * rng.rand(n), 0, 1)
    return y, np.round(score, 2)  # rounding makes ties, as real scores have


def test_known_confusion_matrix_and_metrics():
    y = ["NORMAL"] * 4 + ["PNEUMONIA"] * 6
    score = [0.1, 0.2, 0.7, 0.4, 0.9, 0.8, 0.3, 0.6, 0.55, 0.2]
    report = clinical_report(y, score, n_bootstrap=0)
    # TN=3 (0.1, 0.2, 0.4), FP=1 (0.7), FN=2 (0.3, 0.2), TP=4
    assert report.confusion_matrix.tolist() == [[3, 1], [2, 4]]
    assert report.labels == ("NORMAL", "PNEUMONIA")
    assert report.accuracy.value == pytest.approx(0.7)
    assert report.sensitivity.value == pytest.approx(4 / 6)
    assert report.specificity.value == pytest.approx(3 / 4)
    # (positive, negative) pairs ranked right, per positive score:
    # 0.9: 4, 0.8: 4, 0.3: 2, 0.6: 3, 0.55: 3, 0.2: 1 + a tie counted half
    assert report.roc_auc.value == pytest.approx(17.5 / 24)
    assert np.isnan(report.roc_auc.ci_low)
    # the threshold moves the calls, not the AUC
    strict = clinical_report(y, score, threshold=0.65, n_bootstrap=0)
    assert strict.confusion_matrix.tolist() == [[3, 1], [4, 2]]
    assert strict.roc_auc.value == report.roc_auc.value


def test_positive_label():
    y = np.array([0, 0, 1, 1])
    report = clinical_report(y, [0.2, 0.6, 0.7, 0.9], n_bootstrap=0)
    assert report.labels == (0, 1)
    assert report.confusion_matrix.tolist() == [[1, 1], [0, 2]]
    flipped = clinical_report(
        y, [0.8, 0.4, 0.3, 0.1], positive_label=0, n_bootstrap=0
    )
    assert flipped.labels == (1, 0)
    assert flipped.sensitivity.value == 0.5 and flipped.specificity.value == 1.0
    assert clinical_report(["normal", "viral"], [0.2, 0.9]).labels == (
        "normal",
        "viral",
    )
    with pytest.raises(ValueError, match="Cannot tell which label is positive"):
        clinical_report(["cat", "dog"], [0.1, 0.9])
    with pytest.raises(ValueError, match="positive_label='COVID' is not one"):
        clinical_report(["NORMAL", "PNEUMONIA"], [0.1, 0.9], positive_label="COVID")
    with pytest.raises(ValueError, match="the clinical report is binary"):
        clinical_report(["a", "b", "c"], [0.1, 0.5, 0.9], positive_label="a")
    with pytest.raises(ValueError, match="predict_proba"):
        clinical_report(["NORMAL", "PNEUMONIA"], np.ones((2, 2)))


def test_intervals_contain_the_estimate_and_shrink_with_data():
    y, score = _scores(200)
    report = clinical_report(y, score, n_bootstrap=500, random_state=0)
    for name in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        est = getattr(report, name)
        assert est.ci_low < est.value < est.ci_high, name
        assert 0.0 <= est.ci_low and est.ci_high <= 1.0
    y_big, score_big = _scores(2000, seed=1)
    big = clinical_report(y_big, score_big, n_bootstrap=500, random_state=0)
    width = report.roc_auc.ci_high - report.roc_auc.ci_low
    assert big.roc_auc.ci_high - big.roc_auc.ci_low < width / 2
    # same seed, same intervals
    again = clinical_report(y, score, n_bootstrap=500, random_state=0)
    assert again.to_dict() == report.to_dict()


def test_bootstrap_by_patient_is_wider_for_correlated_images():
    # 40 patients, 10 identical images each: 400 images but 40 independent units
    y, score = _scores(40, seed=2)
    y_img, score_img = np.repeat(y, 10), np.repeat(score, 10)
    groups = np.repeat(np.arange(40), 10)
    by_image = clinical_report(y_img, score_img, n_bootstrap=400, random_state=0)
    by_patient = clinical_report(
        y_img, score_img, groups=groups, n_bootstrap=400, random_state=0
    )
    assert by_image.resampled_by == "image" and by_patient.resampled_by == "patient"
    assert by_patient.n_groups == 40 and by_patient.n_samples == 400
    # the point estimates are the same; only the intervals differ
    assert by_patient.roc_auc.value == by_image.roc_auc.value
    for name in ("accuracy", "roc_auc"):
        wide = getattr(by_patient, name)
        narrow = getattr(by_image, name)
        assert wide.ci_high - wide.ci_low > 2 * (narrow.ci_high - narrow.ci_low)
    # patient resampling matches the image bootstrap of one image per patient
    per_patient = clinical_report(y, score, n_bootstrap=400, random_state=0)
    width = per_patient.roc_auc.ci_high - per_patient.roc_auc.ci_low
    assert by_patient.roc_auc.ci_high - by_patient.roc_auc.ci_low == pytest.approx(
        width, rel=0.3
    )


def test_vectorised_bootstrap_equals_sklearn_with_weights():
    y, score = _scores(150, seed=3)
    y_pos = y == "PNEUMONIA"
    y_pred = score >= 0.5
    weights = np.random.RandomState(0).poisson(1.0, (5, 150)).astype(float)
    fast = _weighted_metrics(y_pos, y_pred, score, weights)
    for b, w in enumerate(weights):
        assert fast["roc_auc"][b] == pytest.approx(
            roc_auc_score(y_pos, score, sample_weight=w)
        )
        assert fast["sensitivity"][b] == pytest.approx(
            recall_score(y_pos, y_pred, sample_weight=w)
        )
        slow = _point_metrics(y_pos, y_pred, score, w)
        for name, value in slow.items():
            assert fast[name][b] == pytest.approx(value), name


def test_to_dict_is_json_and_str_is_a_table():
    y, score = _scores(60)
    report = clinical_report(y, score, n_bootstrap=50, random_state=0)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["labels"] == ["NORMAL", "PNEUMONIA"]
    assert data["metrics"]["roc_auc"]["value"] == pytest.approx(report.roc_auc.value)
    assert np.sum(data["confusion_matrix"]) == 60
    text = str(report)
    for name in ("accuracy", "sensitivity", "specificity", "roc_auc", "95% CI"):
        assert name in text


def test_metrics_draw_nothing():
    """Metrics never import the drawing layer, not even lazily."""
    from sklearn_cxr import _evaluation

    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(_evaluation))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
            imported |= {
                "." * node.level + alias.name for alias in node.names
            }
    drawing = {
        name
        for name in imported
        if name.split(".")[0] == "matplotlib"
        or name.lstrip(".").split(".")[0]
        in ("inspection", "_figures", "_report", "_cli")
    }
    assert not drawing
    assert "._labels" in imported  # the one positive-label rule


def test_binary_scores_of_more_classes_use_the_no_disease_names():
    from sklearn_cxr._evaluation import binary_scores

    proba = np.array([[0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.1, 0.3, 0.6]])
    y = np.array(["healthy", "bacterial", "viral"])
    y_binary, score, positive = binary_scores(
        ["bacterial", "healthy", "viral"], proba, y
    )
    assert positive == "PNEUMONIA"
    assert y_binary.tolist() == ["healthy", "PNEUMONIA", "PNEUMONIA"]
    np.testing.assert_allclose(score, [0.2, 0.8, 0.7])
    with pytest.raises(ValueError, match="several are 'NORMAL'"):
        binary_scores(["healthy", "normal", "viral"], proba, y)
