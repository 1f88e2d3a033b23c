"""Label-free adaptation to a target site (skada's ``sample_domain`` convention).

Tiny BatchNorm network, 32 px images, a source site and a photometrically
shifted target site built from :func:`sklearn_cxr.datasets.make_chest_xrays`.
"""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from torch import nn

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures
from sklearn_cxr._adapt_finetune import coral_loss
from sklearn_cxr.datasets import make_chest_xrays

SOURCE, TARGET = 1, -2


class TinyBNNet(nn.Module):
    """Two convolutions with BatchNorm; its classifier is ``fc``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def photometric_shift(X):
    """Another site's pipeline: gamma, lower contrast, brighter."""
    x = (X / 255.0) ** 0.6 * 0.6 + 0.3
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def shifted_sites(n=48, size=32, labels="numeric"):
    """Source images (labelled) and other patients' images through a shift."""
    data = make_chest_xrays(n, image_size=size, random_state=0)
    X, y = data.images, data.target
    if labels == "string":
        y = data.target_names[y]
    target = np.isin(data.groups, np.unique(data.groups)[::2])
    return X[~target], y[~target], photometric_shift(X[target]), y[target]


def fit_inputs(Xs, ys, Xt, mask=-1):
    X = np.concatenate([Xs, Xt])
    if ys.dtype.kind in "US" or ys.dtype == object:
        y = np.array(list(ys) + [mask] * len(Xt), dtype=object)
    else:
        y = np.r_[ys, np.full(len(Xt), mask)]
    domains = np.r_[np.full(len(Xs), SOURCE), np.full(len(Xt), TARGET)]
    return X, y, domains


def classifier(mode, **params):
    base = dict(
        backbone=TinyBNNet(),
        weights=None,
        image_size=32,
        mode=mode,
        max_epochs=1,
        batch_size=64,
        random_state=0,
        validation_fraction=None,
    )
    base.update(params)
    return PretrainedCNNClassifier(**base)


def import_skada():
    """skada, imported without switching metadata routing on for later tests."""
    with sklearn.config_context():
        return pytest.importorskip("skada", reason="needs the adapt extra (skada)")


@pytest.fixture(scope="module")
def sites():
    return shifted_sites()


# ----------------------------------------------------------------- labels
@pytest.mark.parametrize("mask", ["-1", None])
def test_string_labels_masked_target_left_out_of_classes(mask):
    Xs, ys, Xt, _ = shifted_sites(labels="string")
    X, y, domains = fit_inputs(Xs, ys, Xt, mask=mask)
    clf = classifier("features", adaptation="standardize").fit(
        X, y, sample_domain=domains
    )
    assert clf.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert set(clf.predict(Xt)) <= {"NORMAL", "PNEUMONIA"}
    assert clf.adaptation_["method"] == "standardize"
    assert clf.adaptation_["n_target_images"] == len(Xt)


def test_numeric_mask_left_out_of_classes(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("features", adaptation="standardize").fit(
        X, y, sample_domain=domains
    )
    assert clf.classes_.tolist() == [0, 1]
    assert clf.predict_proba(Xt).shape == (len(Xt), 2)


def test_target_labels_are_ignored(sites):
    """True target labels (as a CV split passes them) change nothing."""
    Xs, ys, Xt, yt = sites
    X, y_masked, domains = fit_inputs(Xs, ys, Xt)
    y_true = np.r_[ys, yt]
    a = classifier("features", adaptation="standardize").fit(
        X, y_masked, sample_domain=domains
    )
    b = classifier("features", adaptation="standardize").fit(
        X, y_true, sample_domain=domains
    )
    np.testing.assert_allclose(a.predict_proba(Xt), b.predict_proba(Xt))


def test_without_sample_domain_nothing_changes(sites):
    Xs, ys, Xt, _ = sites
    plain = classifier("features", adaptation=None).fit(Xs, ys)
    default = classifier("features").fit(Xs, ys)  # adaptation="auto"
    only_sources = classifier("features").fit(
        Xs, ys, sample_domain=np.zeros(len(Xs), int)
    )
    for clf in (default, only_sources):
        assert not hasattr(clf, "adaptation_")
        np.testing.assert_allclose(clf.predict_proba(Xt), plain.predict_proba(Xt))
    # a model fitted without a target ignores sample_domain in predict
    np.testing.assert_allclose(
        plain.predict_proba(Xt, sample_domain=TARGET), plain.predict_proba(Xt)
    )


def test_adaptation_none_ignores_the_target(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    ignored = classifier("features", adaptation=None).fit(X, y, sample_domain=domains)
    plain = classifier("features", adaptation=None).fit(Xs, ys)
    assert not hasattr(ignored, "adaptation_")
    np.testing.assert_allclose(ignored.predict_proba(Xt), plain.predict_proba(Xt))


# ----------------------------------------------------------- feature mode
def test_per_site_standardisation(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("features", adaptation="standardize").fit(
        X, y, sample_domain=domains
    )
    adapter = clf.adaptation_["adapter"]
    target = clf.scaler_.transform(clf.features_.transform(Xt))
    adapted = adapter.transform(target, np.full(len(Xt), TARGET))
    np.testing.assert_allclose(adapted.mean(axis=0), 0, atol=1e-5)
    # the target is its own site: predictions differ from the source treatment
    as_target = clf.predict_proba(Xt)
    np.testing.assert_allclose(as_target, clf.predict_proba(Xt, sample_domain=TARGET))
    assert not np.allclose(as_target, clf.predict_proba(Xt, sample_domain=SOURCE))
    # per-image domains in one call
    mixed = np.r_[np.full(3, SOURCE), np.full(3, TARGET)]
    proba = clf.predict_proba(np.concatenate([Xt[:3], Xt[:3]]), sample_domain=mixed)
    np.testing.assert_allclose(proba[:3], clf.predict_proba(Xt[:3], sample_domain=1))
    np.testing.assert_allclose(proba[3:], as_target[:3])


def test_coral_uses_skada_and_keeps_global_config(sites):
    import_skada()
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    before = sklearn.get_config()["enable_metadata_routing"]
    clf = classifier("features", adaptation="coral").fit(X, y, sample_domain=domains)
    assert sklearn.get_config()["enable_metadata_routing"] == before
    coral = clf.adaptation_["adapter"].coral_
    assert type(coral).__name__ == "CORALAdapter"
    # the final estimator was fitted on the CORAL-mapped source embeddings
    source = clf.scaler_.transform(clf.features_.transform(Xs))
    mapped = coral.transform(source, sample_domain=np.full(len(Xs), SOURCE),
                             allow_source=True)
    refit = clone(clf.final_estimator_).fit(mapped, ys)
    np.testing.assert_allclose(refit.coef_, clf.final_estimator_.coef_, atol=1e-5)
    assert clf.predict(Xt).shape == (len(Xt),)


def test_auto_picks_standardize_in_feature_mode_and_adabn_in_finetune(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("features").fit(X, y, sample_domain=domains)
    assert clf.adaptation_["method"] == "standardize"
    clf = classifier("finetune").fit(X, y, sample_domain=domains)
    assert clf.adaptation_["method"] == "adabn"


def test_make_da_pipeline_route_with_pretrained_features(sites):
    skada = import_skada()
    from sklearn.linear_model import LogisticRegression

    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    features = PretrainedFeatures(
        backbone=TinyBNNet(), weights=None, image_size=32, random_state=0
    )
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = skada.make_da_pipeline(
            features, skada.CORALAdapter(), LogisticRegression(max_iter=500)
        )
        pipe.fit(X, y, sample_domain=domains)
        pred = pipe.predict(Xt, sample_domain=np.full(len(Xt), TARGET))
    assert set(pred) <= {0, 1}
    lr = pipe[-1].get_estimator()
    assert lr.classes_.tolist() == [0, 1]  # the masked -1 was left out


# ---------------------------------------------------------- finetune mode
def test_adabn_reestimates_batchnorm_on_the_target(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    adapted = classifier("finetune", adaptation="adabn").fit(
        X, y, sample_domain=domains
    )
    plain = classifier("finetune", adaptation=None).fit(Xs, ys)
    # training did not see the target: with the source statistics the
    # network is the unadapted one
    np.testing.assert_allclose(
        adapted.predict_proba(Xt, sample_domain=SOURCE),
        plain.predict_proba(Xt),
        atol=1e-6,
    )
    # the first BatchNorm layer now holds the target's channel means
    module = adapted.module_
    first_conv = module.body.features[0]
    bn = module.body.features[1]
    from sklearn_cxr._images import ImageDataset, check_images

    ds = ImageDataset(check_images(Xt), transform=adapted._eval_transform())
    batch = torch.stack([ds[i][0]["x"] for i in range(len(ds))])
    with torch.no_grad():
        expected = first_conv(batch).mean(dim=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.numpy(), expected.numpy(), rtol=1e-4,
                               atol=1e-5)
    assert not np.allclose(
        adapted.predict_proba(Xt), adapted.predict_proba(Xt, sample_domain=SOURCE)
    )


@pytest.mark.slow
def test_deepcoral_trains_with_the_alignment_loss(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier(
        "finetune", adaptation="deepcoral", max_epochs=2, freeze_epochs=0,
        batch_size=16,
    ).fit(X, y, sample_domain=domains)
    losses = [b["coral_loss"] for e in clf.history_ for b in e["batches"]]
    assert len(losses) == 2 * int(np.ceil(len(Xs) / 16))
    assert all(np.isfinite(losses)) and max(losses) > 0
    assert clf.net_.target_batches_ is None  # no target data kept
    assert clf.adaptation_["method"] == "deepcoral"
    assert clf.adaptation_["source_batchnorm"] is not None
    assert clf.predict(Xt).shape == (len(Xt),)


def test_coral_loss_value():
    torch.manual_seed(0)
    a, b = torch.randn(50, 4), torch.randn(40, 4) * 3
    assert float(coral_loss(a, a)) == pytest.approx(0.0, abs=1e-7)
    ca, cb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = ((ca - cb) ** 2).sum() / (4 * 16)
    assert float(coral_loss(a, b)) == pytest.approx(expected, rel=1e-4)


def test_adabn_without_batchnorm_warns_and_keeps_predictions(sites, caplog):
    from _helpers import TinyNet

    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("finetune", backbone=TinyNet(), adaptation="adabn")
    with caplog.at_level("WARNING"):
        clf.fit(X, y, sample_domain=domains)
    assert "no BatchNorm layer" in caplog.text
    np.testing.assert_allclose(
        clf.predict_proba(Xt), clf.predict_proba(Xt, sample_domain=SOURCE)
    )


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "domains, message",
    [
        (lambda n, k: np.r_[np.ones(n), -np.ones(k // 2), -3 * np.ones(k - k // 2)],
         "several target sites"),
        (lambda n, k: -np.ones(n + k, int), "every image as target"),
        (lambda n, k: np.ones(n + k - 1, int), "one domain per image"),
        (lambda n, k: np.array(["a"] * (n + k)), "must hold integers"),
        (lambda n, k: np.r_[np.ones(n), -np.full(k, 1.5)], "non-integer"),
    ],
)
def test_bad_sample_domain(sites, domains, message):
    Xs, ys, Xt, _ = sites
    X, y, _ = fit_inputs(Xs, ys, Xt)
    with pytest.raises((ValueError, TypeError), match=message):
        classifier("features").fit(X, y, sample_domain=domains(len(Xs), len(Xt)))


def test_masked_label_on_a_source_is_refused(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    y = y.copy()
    y[0] = -1
    with pytest.raises(ValueError, match="source images .* carry the masked label"):
        classifier("features").fit(X, y, sample_domain=domains)


def test_method_of_the_other_mode_is_refused(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    with pytest.raises(ValueError, match="'adabn' is a finetune-mode method"):
        classifier("features", adaptation="adabn").fit(X, y, sample_domain=domains)
    with pytest.raises(ValueError, match=r"'adaptation' parameter .*'deepcoral'"):
        classifier("finetune", adaptation="nope").fit(Xs, ys)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"accelerator": True}, "does not run under accelerator"),
        ({"coral_weight": -1.0}, r"'coral_weight' parameter .* \[0.0, inf\)"),
        ({"coral_weight": "high"}, "'coral_weight' parameter"),
        ({"coral_weight": True}, "coral_weight must be a finite number"),
    ],
)
def test_deepcoral_bad_settings_are_refused(sites, params, message):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("finetune", adaptation="deepcoral", **params)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, sample_domain=domains)


def test_unknown_domain_in_predict(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("features", adaptation="standardize").fit(
        X, y, sample_domain=domains
    )
    with pytest.raises(ValueError, match=r"holds \[-5\], which were not seen"):
        clf.predict(Xt, sample_domain=-5)


def test_tiny_target_is_refused(sites):
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt[:1])
    with pytest.raises(ValueError, match="target site has 1 image"):
        classifier("features", adaptation="standardize").fit(
            X, y, sample_domain=domains
        )


@pytest.mark.parametrize(
    "mode, adaptation",
    [("features", "standardize"), ("features", "coral"), ("finetune", "adabn")],
)
def test_save_and_load_keep_the_adaptation(sites, tmp_path, mode, adaptation):
    if adaptation == "coral":
        import_skada()
    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    # the safe format rebuilds torchvision networks by name
    clf = classifier(mode, backbone="resnet18", adaptation=adaptation)
    clf.fit(X, y, sample_domain=domains)
    path = clf.save(tmp_path / "model.cxr")
    loaded = PretrainedCNNClassifier.load(path)
    assert loaded.adaptation_["method"] == adaptation
    assert loaded.adaptation_["target_domain"] == TARGET
    for domain in (None, SOURCE):
        np.testing.assert_allclose(
            loaded.predict_proba(Xt, sample_domain=domain),
            clf.predict_proba(Xt, sample_domain=domain),
            atol=1e-6,
        )
    with pytest.raises(ValueError, match="not seen in fit"):
        loaded.predict(Xt, sample_domain=-7)


def test_load_refuses_a_file_with_missing_adaptation_tensors(sites, tmp_path):
    import json
    import zipfile

    from sklearn_cxr import ModelFileError

    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("features", backbone="resnet18", adaptation="standardize")
    clf.fit(X, y, sample_domain=domains)
    path = clf.save(tmp_path / "model.cxr")
    damaged = tmp_path / "damaged.cxr"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item.endswith(".json") and b"scaled_domains" in data:
                config = json.loads(data)
                config["fitted"]["adaptation"]["scaled_domains"].append(99)
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(ModelFileError, match="adaptation stored in .* incomplete"):
        PretrainedCNNClassifier.load(damaged)


def test_pickle_keeps_the_adaptation(sites):
    import pickle

    Xs, ys, Xt, _ = sites
    X, y, domains = fit_inputs(Xs, ys, Xt)
    clf = classifier("finetune", adaptation="adabn").fit(X, y, sample_domain=domains)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(copy.predict_proba(Xt), clf.predict_proba(Xt))
    np.testing.assert_allclose(
        copy.predict_proba(Xt, sample_domain=SOURCE),
        clf.predict_proba(Xt, sample_domain=SOURCE),
    )


# ------------------------------------------------- skada's model selection
class _Recorder(PretrainedCNNClassifier):
    """Records the sample_domain that fit and score receive."""

    calls = []

    def fit(self, X, y, groups=None, sample_weight=None, sample_domain=None):
        _Recorder.calls.append(("fit", None if sample_domain is None
                                else np.asarray(sample_domain).copy()))
        return super().fit(X, y, groups=groups, sample_weight=sample_weight,
                           sample_domain=sample_domain)

    def score(self, X, y, sample_weight=None, sample_domain=None):
        _Recorder.calls.append(("score", None if sample_domain is None
                                else np.asarray(sample_domain).copy()))
        return super().score(X, y, sample_weight=sample_weight,
                             sample_domain=sample_domain)


@pytest.mark.slow
@pytest.mark.parametrize("splitter", ["SourceTargetShuffleSplit", "LeaveOneDomainOut"])
def test_cross_val_score_with_skada_splitters(splitter):
    model_selection = import_skada().model_selection
    from sklearn.model_selection import cross_val_score

    # two sites, each present as a source (d) and as a target (-d), the way
    # skada's DomainAwareDataset.pack lays them out; string labels, unmasked
    Xs, ys, Xt, yt = shifted_sites(n=40, labels="string")
    X = np.concatenate([Xs, Xt, Xs, Xt])
    y = np.concatenate([ys, yt, ys, yt])
    domains = np.r_[
        np.full(len(Xs), 1), np.full(len(Xt), 2),
        np.full(len(Xs), -1), np.full(len(Xt), -2),
    ]
    if splitter == "SourceTargetShuffleSplit":
        keep = (domains == 1) | (domains == -2)
        X, y, domains = X[keep], y[keep], domains[keep]
        cv = model_selection.SourceTargetShuffleSplit(
            n_splits=2, test_size=0.3, random_state=0
        )
    else:
        cv = model_selection.LeaveOneDomainOut(max_n_splits=2, test_size=0.3,
                                               random_state=0)
    base = dict(backbone=TinyBNNet(), weights=None, image_size=32, batch_size=64,
                mode="features", random_state=0, adaptation="standardize")
    _Recorder.calls.clear()
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(
            _Recorder(**base), X, y, cv=cv, params={"sample_domain": domains}
        )
        splits = list(cv.split(X, y, sample_domain=domains))
    assert len(scores) == 2 and np.all((scores >= 0) & (scores <= 1))
    fits = [d for kind, d in _Recorder.calls if kind == "fit"]
    tests = [d for kind, d in _Recorder.calls if kind == "score"]
    assert len(fits) == len(tests) == 2
    for (train, test), fit_domains, test_domains, score in zip(
        splits, fits, tests, scores
    ):
        np.testing.assert_array_equal(fit_domains, domains[train])
        np.testing.assert_array_equal(test_domains, domains[test])
        assert (fit_domains < 0).any()  # the fold adapted to its target
        manual = PretrainedCNNClassifier(**base).fit(
            X[train], y[train], sample_domain=domains[train]
        )
        assert manual.score(
            X[test], y[test], sample_domain=domains[test]
        ) == pytest.approx(score)
