"""The embedding cache (``memory=``): what its key covers, and reuse across folds."""

import joblib
import numpy as np
import pytest
import torch
import torchvision
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures


@pytest.fixture
def embed_calls(monkeypatch):
    """Count images passed to ``PretrainedFeatures._embed`` (cache misses)."""
    calls = []
    original = PretrainedFeatures._embed

    def counting(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(PretrainedFeatures, "_embed", counting)
    return calls


def _feats(memory, **kw):
    params = dict(
        backbone="resnet18",
        weights=None,
        image_size=32,
        random_state=0,
        memory=memory,
    )
    params.update(kw)
    return PretrainedFeatures(**params).fit()


def test_same_config_hits_and_matches_uncached(tmp_path, embed_calls, make_blobs):
    X, _, _ = make_blobs(n=8)
    first = _feats(str(tmp_path)).transform(X)
    assert embed_calls == [8]
    # A new, identically configured transformer (as made by clone) hits.
    second = _feats(joblib.Memory(tmp_path, verbose=0)).transform(X)
    assert embed_calls == [8]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, _feats(None).transform(X))


def test_key_does_not_depend_on_the_subset(tmp_path, embed_calls, make_blobs):
    """Folds are different subsets of the same images: they share entries."""
    X, _, _ = make_blobs(n=8)
    feats = _feats(tmp_path)
    part_a = feats.transform(X[:5])
    part_b = feats.transform(X[3:])
    assert embed_calls == [5, 3]  # only the 3 images not seen before
    whole = feats.transform(X[::-1])
    assert embed_calls == [5, 3]
    np.testing.assert_array_equal(whole[::-1][:5], part_a)
    np.testing.assert_array_equal(whole[::-1][3:], part_b)


def test_changed_image_content_misses(tmp_path, embed_calls, make_blobs):
    X, _, _ = make_blobs(n=4)
    feats = _feats(tmp_path)
    feats.transform(X)
    X2 = X.copy()
    X2[2, 0, 0] ^= 1  # one pixel of one image
    feats.transform(X2)
    assert embed_calls == [4, 1]


def test_each_key_part_misses(tmp_path, embed_calls, make_blobs):
    X, _, _ = make_blobs(n=4)
    _feats(tmp_path).transform(X)
    changes = [
        {"image_size": 48},
        {"equalize": True},
        {"in_chans": 1},
        {"random_state": 1},  # random weights: the seed changes them
        {"backbone": "mobilenet_v3_small"},
    ]
    for change in changes:
        before = len(embed_calls)
        _feats(tmp_path, **change).transform(X)
        assert embed_calls[before:] == [4], change  # all 4 images embedded
    assert embed_calls == [4] * (1 + len(changes))
    _feats(tmp_path).transform(X)  # the first configuration is still cached
    assert len(embed_calls) == 1 + len(changes)


def test_weights_file_content_is_in_the_key(tmp_path, embed_calls, make_blobs):
    X, _, _ = make_blobs(n=4)
    weights = tmp_path / "w.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    cache = tmp_path / "cache"
    _feats(cache, weights=weights).transform(X)
    # Same file, another seed: the seed does not matter with real weights.
    _feats(cache, weights=weights, random_state=5).transform(X)
    assert embed_calls == [4]
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18().state_dict(), weights)  # same path
    _feats(cache, weights=weights).transform(X)
    assert embed_calls == [4, 4]


def test_bad_memory_is_refused(blobs):
    X, _, _ = blobs
    with pytest.raises(ValueError, match=r"'memory' parameter .* Got 3.5 instead"):
        _feats(memory=3.5)
    # set after fit, it is refused where it is used
    feats = _feats(memory=None).set_params(memory=3.5)
    with pytest.raises(ValueError, match="memory must be None, a folder path"):
        feats.transform(X[:2])


def test_grid_search_embeds_each_image_once(tmp_path, embed_calls, make_blobs):
    """2 candidates x 3 folds + refit: one backbone pass over the data."""
    X, y, groups = make_blobs(n=24)
    clf = PretrainedCNNClassifier(
        backbone="resnet18",
        weights=None,
        image_size=32,
        mode="features",
        random_state=0,
        memory=tmp_path,
    )
    search = GridSearchCV(
        clf,
        {"final_estimator__C": [0.01, 100.0]},
        cv=StratifiedGroupKFold(3),
        scoring="roc_auc",
    ).fit(X, y, groups=groups)
    assert sum(embed_calls) == len(X)
    assert len(search.cv_results_["mean_test_score"]) == 2
    # The cached model predicts as one fitted without a cache.
    uncached = clone(search.best_estimator_).set_params(memory=None).fit(X, y)
    np.testing.assert_allclose(
        search.best_estimator_.predict_proba(X), uncached.predict_proba(X), atol=1e-6
    )


# ------------------------------------------------- damaged or unwritable cache
def _shards(tmp_path):
    return sorted(tmp_path.rglob("*.npz"))


@pytest.fixture
def tiny():
    """One small backbone module: its weights are part of the cache key."""
    from _helpers import TinyNet

    torch.manual_seed(0)
    net = TinyNet()
    return lambda memory: _feats(memory, backbone=net)


def test_temp_and_damaged_shards_count_as_missing(
    tmp_path, embed_calls, tiny, make_blobs
):
    import zipfile

    X, _, _ = make_blobs(n=8)
    expected = tiny(tmp_path).transform(X)
    [shard] = _shards(tmp_path)
    folder = shard.parent
    data = shard.read_bytes()
    with zipfile.ZipFile(shard) as archive:
        info = archive.getinfo("embeddings.npy")
    # the last byte of the stored embeddings: the member's CRC no longer holds
    end = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    bad_crc = bytearray(data)
    bad_crc[end + info.compress_size - 1] ^= 0xFF
    (folder / ".tmp-writing.npz").write_bytes(b"")  # another writer's partial file
    damaged = {
        "zero-bytes": b"",
        "truncated": data[: len(data) // 2],
        "bad-crc": bytes(bad_crc),
    }
    for name, content in damaged.items():
        shard.write_bytes(content)
        embed_calls.clear()
        got = tiny(tmp_path).transform(X)
        assert embed_calls == [8], name  # recomputed, not a crash
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        embed_calls.clear()
        tiny(tmp_path).transform(X)  # and cached again
        assert embed_calls == [], name


def test_shard_is_synced_before_it_is_renamed(tmp_path, monkeypatch, tiny, make_blobs):
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or
                        real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or
                        real_replace(a, b))
    tiny(tmp_path).transform(make_blobs(n=4)[0])
    assert events == ["fsync", "replace"]


def test_full_disk_names_the_folder_and_returns_the_embeddings(
    tmp_path, monkeypatch, tiny, make_blobs
):
    import errno

    X, _, _ = make_blobs(n=8)
    expected = tiny(None).transform(X)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.warns(UserWarning, match="embedding cache folder .*"
                      + str(tmp_path) + r".*No space left.*8 embeddings") as w:
        got = tiny(tmp_path).transform(X)
    assert "sklearn_cxr_embeddings" in str(w[0].message)
    np.testing.assert_array_equal(got, expected)
    assert not list(tmp_path.rglob(".tmp-*")) and not _shards(tmp_path)
