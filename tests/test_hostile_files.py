"""Hostile files: nothing the package reads may run code or write outside.

Each payload, when unpickled, creates a marker folder. Every test first shows
that the payload is live (a plain unpickler does create the marker), then that
the package refuses the file and the marker is not created.
"""

import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import TinyNet

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures


class Payload:
    """Unpickling this creates ``marker`` (a folder): stands in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _assert_payload_is_live(load, marker):
    """The control: an unsafe loader does run the payload."""
    assert not os.path.exists(marker)
    load()
    assert os.path.isdir(marker), "the payload did not run: the test proves nothing"
    os.rmdir(marker)


# ------------------------------------------------------------- weights files
def _weights_files(tmp_path, marker):
    """Files that look like weights and carry the payload in different places."""
    state = TinyNet().state_dict()
    files = {}
    files["object"] = Payload(marker)
    files["inside-state-dict"] = {**state, "conv.weight": Payload(marker)}
    files["wrapped"] = {"state_dict": state, "epoch": Payload(marker)}
    paths = {}
    for name, obj in files.items():
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(obj, paths[name])
    paths["plain-pickle"] = tmp_path / "plain-pickle.pt"
    paths["plain-pickle"].write_bytes(pickle.dumps(Payload(marker), protocol=2))
    return paths


@pytest.mark.parametrize(
    "name", ["object", "inside-state-dict", "wrapped", "plain-pickle"]
)
def test_weights_file_with_pickled_code_is_refused(name, tmp_path, make_blobs):
    marker = tmp_path / "marker"
    path = _weights_files(tmp_path, marker)[name]
    if name == "plain-pickle":
        _assert_payload_is_live(lambda: pickle.loads(path.read_bytes()), marker)
    else:
        _assert_payload_is_live(lambda: torch.load(path, weights_only=False), marker)
    X, y, _ = make_blobs(n=8)
    estimators = [
        PretrainedFeatures(backbone=TinyNet(), weights=path, image_size=32),
        PretrainedCNNClassifier(
            backbone=TinyNet(), weights=str(path), image_size=32, max_epochs=1
        ),
        PretrainedCNNClassifier(
            backbone="resnet18", weights=path, image_size=32, mode="features"
        ),
    ]
    for estimator in estimators:
        refused = r"(?s)Cannot load weights file .*weights_only=True.*refused"
        with pytest.raises(ValueError, match=refused):
            if isinstance(estimator, PretrainedFeatures):
                estimator.fit()
            else:
                estimator.fit(X, y)
        assert not marker.exists()
        assert not hasattr(estimator, "classes_")


def test_clean_weights_file_loads(tmp_path):
    """The control of the refusal: a plain state dict is accepted."""
    source = TinyNet()
    path = tmp_path / "clean.pth"
    torch.save(source.state_dict(), path)
    features = PretrainedFeatures(backbone=TinyNet(), weights=path, image_size=32)
    features.fit()
    torch.testing.assert_close(features.backbone_.conv.weight, source.conv.weight)


# --------------------------------------------------------- safe model format
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, make_blobs):
    """A small fitted feature-mode classifier saved in the safe format."""
    X, y, _ = make_blobs(n=8)
    clf = PretrainedCNNClassifier(
        backbone="resnet18",
        weights=None,
        image_size=32,
        mode="features",
        random_state=0,
    ).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "model.cxr"
    clf.save(path)
    return path, X, clf.predict_proba(X)


def _rewrite(source, target, replace=None, add=None):
    """Copy a model archive, replacing or adding members."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = replace.get(info.filename, old.read(info.filename))
            new.writestr(info.filename, data)
        for name, data in add.items():
            new.writestr(name, data)
    return target


def test_saved_model_loads(saved_model):
    path, X, proba = saved_model
    loaded = PretrainedCNNClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-6)


class SkopsPayload:
    """A plain object whose restoration by skops would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __setstate__(self, state):
        os.mkdir(state["marker"])
        self.__dict__.update(state)


def test_pickle_file_posing_as_a_model_is_refused(saved_model, tmp_path):
    marker = tmp_path / "marker"
    fake = tmp_path / "model.cxr"
    fake.write_bytes(pickle.dumps(Payload(marker)))
    _assert_payload_is_live(lambda: pickle.loads(fake.read_bytes()), marker)
    for cls in (PretrainedCNNClassifier, PretrainedFeatures):
        with pytest.raises(ValueError, match=r"not a sklearn_cxr model file.*pickle"):
            cls.load(fake)
    assert not marker.exists()


def test_tampered_model_members_are_refused(saved_model, tmp_path):
    import skops.io as sio

    path, _, _ = saved_model
    marker = tmp_path / "marker"
    pickled = pickle.dumps(Payload(marker))
    torch_pickle = io.BytesIO()
    torch.save({"x": Payload(marker)}, torch_pickle)
    skops_payload = sio.dumps(SkopsPayload(marker))
    _assert_payload_is_live(
        lambda: sio.loads(skops_payload, trusted=sio.get_untrusted_types(
            data=skops_payload)),
        marker,
    )
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    as_other_class = dict(config, **{"class": "posix.system"})
    reduce_in_params = json.loads(json.dumps(config))
    reduce_in_params["params"]["backbone"] = {"__reduce__": ["os.mkdir", [str(marker)]]}
    cases = {
        "extra-pickle-member": (
            {"add": {"payload.pkl": pickled}},
            r"unexpected members \['payload\.pkl'\].*refused",
        ),
        "tensors-as-torch-pickle": (
            {"replace": {"model.safetensors": torch_pickle.getvalue()}},
            r"model\.safetensors is not valid",
        ),
        "skops-untrusted-type": (
            {"replace": {"final_estimator.skops": skops_payload}},
            r"final_estimator\.skops holds types that are not trusted: "
            r"\['.*SkopsPayload'\]",
        ),
        "skops-member-as-pickle": (
            {"replace": {"scaler.skops": pickled}},
            r"scaler\.skops is not a valid skops file",
        ),
        "config-names-another-class": (
            {"replace": {"config.json": json.dumps(as_other_class)}},
            r"holds a posix\.system, not a PretrainedCNNClassifier",
        ),
        "config-object-in-params": (
            {"replace": {"config.json": json.dumps(reduce_in_params)}},
            r"Unexpected JSON object in config",
        ),
    }
    for name, (change, message) in cases.items():
        tampered = _rewrite(path, tmp_path / f"{name}.cxr", **change)
        with pytest.raises(ValueError, match=message):
            PretrainedCNNClassifier.load(tampered)
        assert not marker.exists(), name


# -------------------------------------------------------- archive extraction
def _zip(path, members):
    """``members``: (name, data) pairs, or (name, None) for a symbolic link."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            if data is None:  # a symlink pointing outside
                info.external_attr = (0o120777 << 16)
                data = b"/etc"
            archive.writestr(info, data)
    return path


def _tar(path, members):
    """``members``: (name, kind, data) with kind file, symlink, hardlink or fifo."""
    with tarfile.open(path, "w") as archive:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = data or ""
            archive.addfile(info)
    return path


@pytest.fixture
def extract():
    from sklearn_cxr.datasets._base import UnsafeArchiveError, _safe_extract

    return _safe_extract, UnsafeArchiveError


def _unsafe_zips(tmp_path):
    outside = str(tmp_path / "outside.txt")
    return {
        "dotdot": ([("data/ok.txt", b"ok"), ("../outside.txt", b"x")], "outside"),
        "nested-dotdot": (
            [("data/ok.txt", b"ok"), ("data/../../outside.txt", b"x")],
            "outside",
        ),
        "absolute": ([("data/ok.txt", b"ok"), (outside, b"x")], "absolute path"),
        "symlink": ([("data/ok.txt", b"ok"), ("data/link", None)], "symbolic link"),
    }


@pytest.mark.parametrize("case", ["dotdot", "nested-dotdot", "absolute", "symlink"])
def test_zip_slip_is_refused(case, tmp_path, extract):
    safe_extract, UnsafeArchiveError = extract
    members, why = _unsafe_zips(tmp_path)[case]
    archive = _zip(tmp_path / "evil.zip", members)
    target = tmp_path / "target" / "inner"
    bad_name = members[-1][0]
    with pytest.raises(UnsafeArchiveError, match=rf"member '{bad_name}' .*{why}"):
        safe_extract(archive, target)
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "target" / "outside.txt").exists()
    assert os.listdir(target) == []  # refused before anything was written


@pytest.mark.parametrize(
    "case", ["dotdot", "absolute", "symlink-out", "hardlink-out", "fifo"]
)
def test_tar_members_leaving_the_folder_are_refused(case, tmp_path, extract):
    safe_extract, UnsafeArchiveError = extract
    outside = str(tmp_path / "outside.txt")
    bad, why = {
        "dotdot": (("../outside.txt", "file", b"x"), "outside"),
        "absolute": ((outside, "file", b"x"), "absolute path"),
        "symlink-out": (("data/link", "symlink", outside), "is a link"),
        "hardlink-out": (("data/hard", "hardlink", outside), "is a link"),
        "fifo": (("data/pipe", "fifo", None), "special file"),
    }[case]
    archive = _tar(tmp_path / "evil.tar", [("data/ok.txt", "file", b"ok"), bad])
    target = tmp_path / "target" / "inner"
    with pytest.raises(UnsafeArchiveError, match=rf"member '{bad[0]}' .*{why}"):
        safe_extract(archive, target)
    assert not (tmp_path / "outside.txt").exists()
    assert os.listdir(target) == []


def test_safe_archives_extract(tmp_path, extract):
    safe_extract, _ = extract
    zipped = _zip(tmp_path / "ok.zip", [("a/b/c.txt", b"zip"), ("a/d..e.txt", b"2")])
    tarred = _tar(tmp_path / "ok.tar", [("a/b/c.txt", "file", b"tar")])
    root = safe_extract(zipped, tmp_path / "z")
    assert Path(root, "a", "b", "c.txt").read_bytes() == b"zip"
    assert Path(root, "a", "d..e.txt").read_bytes() == b"2"
    root = safe_extract(tarred, tmp_path / "t")
    assert Path(root, "a", "b", "c.txt").read_bytes() == b"tar"


# ------------------------------------------------------------- command line
@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".pickle"])
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_refuses_pickled_models_unless_trusted(command, suffix, tmp_path, capsys):
    from sklearn_cxr._cli import build_parser, main

    marker = tmp_path / "marker"
    model = tmp_path / f"model{suffix}"
    model.write_bytes(pickle.dumps(Payload(marker)))
    _assert_payload_is_live(lambda: __import__("joblib").load(model), marker)
    image = tmp_path / "x.png"
    image.write_bytes(b"unused")
    argv = [command, str(model), str(image if command == "predict" else tmp_path)]
    assert main(argv + ["-q"]) == 1
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and "runs any code" in err and str(model) in err
    assert not marker.exists()
    # with the flag, the user asked for it: the pickle is loaded (and runs)
    assert main(argv + ["-q", "--trust-pickle"]) == 1
    assert marker.is_dir()
    help_text = build_parser()._subparsers._group_actions[0].choices[command]
    assert "--trust-pickle" in help_text.format_help()
    assert "runs any code" in " ".join(help_text.format_help().split())


# -------------------------------------------------------------------- images
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
    b"0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"
)


def test_image_reader_decodes_only_supported_formats(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin, Image

    from sklearn_cxr import ImageReadError
    from sklearn_cxr._images import read_image

    ran = []

    def ghostscript(*args, **kwargs):  # stands in for the real interpreter
        ran.append(args)
        raise OSError("Ghostscript ran")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    eps = tmp_path / "IM-0001-0001.png"
    eps.write_bytes(EPS)
    with pytest.raises(OSError, match="Ghostscript ran"):  # the control
        Image.open(eps).load()
    assert ran
    ran.clear()
    gif = tmp_path / "IM-0002-0001.jpeg"
    Image.new("L", (8, 8)).save(gif, format="GIF")
    for path in (eps, gif):
        with pytest.raises(ImageReadError, match="not a JPEG, PNG, TIFF or BMP") as e:
            read_image(path)
        assert repr(str(path)) in str(e.value)
        X = [path, path]
        with pytest.raises(ImageReadError, match=path.name):
            PretrainedFeatures(
                backbone=TinyNet(), weights=None, image_size=8
            ).fit_transform(X)
    assert not ran
    for fmt, suffix in [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"),
                        ("BMP", ".bmp")]:
        ok = tmp_path / f"ok{suffix}"
        Image.new("L", (8, 8), 7).save(ok, format=fmt)
        assert read_image(ok).size == (8, 8)


# ------------------------------------------------ hostile model archives
def _config_of(path):
    return json.loads(zipfile.ZipFile(path).read("config.json"))


def _with_config(source, target, config=None, raw=None, compress=False):
    """Copy a model archive with another config.json (``raw`` bytes or JSON)."""
    data = raw if raw is not None else json.dumps(config).encode()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename == "config.json":
                new.writestr("config.json", data, compress_type=method)
            else:
                new.writestr(info.filename, old.read(info.filename))
    return target


def test_hostile_model_configs_are_refused(saved_model, tmp_path):
    from sklearn_cxr import ModelFileError

    path, _, _ = saved_model
    config = _config_of(path)

    def changed(**changes):
        new = json.loads(json.dumps(config))
        for key, value in changes.items():
            if value is None:
                del new[key]
            else:
                new[key] = value
        return new

    labels = json.loads(json.dumps(config))
    labels["fitted"]["classes_"]["dtype"] = "(100,100)f8"
    unknown_param = json.loads(json.dumps(config))
    unknown_param["params"]["bogus"] = 1
    bad_value = json.loads(json.dumps(config))
    bad_value["params"]["image_size"] = 3
    padded = json.dumps(config).encode() + b" " * (2 << 20)  # valid JSON, 2 MB
    cases = {
        "inflated": ({"raw": padded, "compress": True},
                     r"config\.json would decompress to \d+ bytes, over the limit"),
        "label-dtype": ({"config": labels}, r"label dtype '\(100,100\)f8'"),
        "deep": ({"raw": b"[" * 100_000 + b"]" * 100_000}, "nested too deeply"),
        "no-params": ({"config": changed(params=None)}, r"lacks \['params'\]"),
        "str-version": ({"config": changed(format_version="1")},
                        "format_version '1'; expected an integer"),
        "list-fitted": ({"config": changed(fitted=[])},
                        "'fitted' of another type"),
        "unknown-param": ({"config": unknown_param},
                          r"sets parameters \['bogus'\] that PretrainedCNN"),
        "unknown-key": ({"config": changed(extra=1)}, r"unknown keys \['extra'\]"),
        "bad-param-value": ({"config": bad_value},
                            r"invalid parameters: The 'image_size' parameter"),
    }
    for name, (change, message) in cases.items():
        bad = _with_config(path, tmp_path / f"{name}.cxr", **change)
        if name == "inflated":
            stored = zipfile.ZipFile(bad).getinfo("config.json").compress_size
            assert stored < (2 << 20) // 50  # the amplification
        with pytest.raises(ModelFileError, match=message):
            PretrainedCNNClassifier.load(bad)
    # a second config.json member: refused, not silently one of the two
    duplicate = tmp_path / "duplicate.cxr"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _rewrite(path, duplicate, add={"config.json": json.dumps(config)})
    with pytest.raises(ModelFileError, match=r"\['config\.json'\] more than once"):
        PretrainedCNNClassifier.load(duplicate)


@pytest.fixture(scope="module")
def saved_finetuned(tmp_path_factory, make_blobs):
    from _helpers import tiny_resnet_classifier

    folder = tmp_path_factory.mktemp("finetuned")
    X, y, _ = make_blobs(n=8)
    clf = tiny_resnet_classifier("finetune", checkpoint_dir=folder / "checkpoints")
    clf.fit(X, y)
    path = folder / "model.cxr"
    clf.save(path)
    return path, folder


def test_head_widths_must_match_the_tensors(saved_finetuned, tmp_path, monkeypatch):
    import sklearn_cxr._classifier_state as classifier_state
    from sklearn_cxr import ModelFileError

    path, _ = saved_finetuned
    built = []
    real = classifier_state.build_head
    monkeypatch.setattr(classifier_state, "build_head",
                        lambda *a, **k: built.append(a) or real(*a, **k))
    wide = _config_of(path)
    wide["fitted"]["head_in_features"] = 10**6
    hidden = _config_of(path)
    hidden["params"]["hidden_units"] = {"__tuple__": [2_000_000_000]}
    for name, config in {"wide": wide, "hidden": hidden}.items():
        bad = _with_config(path, tmp_path / f"{name}.cxr", config=config)
        with pytest.raises(ModelFileError, match="head's layers in model.safetensors"):
            PretrainedCNNClassifier.load(bad)
        assert not built, name  # refused before any layer was allocated
    PretrainedCNNClassifier.load(path)
    assert built


def test_loaded_model_does_not_keep_the_savers_checkpoint_dir(saved_finetuned,
                                                             tmp_path):
    path, folder = saved_finetuned
    raw = zipfile.ZipFile(path).read("config.json").decode()
    assert str(folder) not in raw  # no absolute path of the saver leaks
    assert PretrainedCNNClassifier.load(path).checkpoint_dir is None
    # a file written before this rule: the folder is dropped on load too
    old = _config_of(path)
    old["params"]["checkpoint_dir"] = str(folder / "checkpoints")
    older = _with_config(path, tmp_path / "old.cxr", config=old)
    assert PretrainedCNNClassifier.load(older).checkpoint_dir is None


# ------------------------------------------------------------ leaks of saves
def test_killed_saves_are_cleaned_up_and_permissions_kept(saved_model, tmp_path,
                                                         monkeypatch):
    import signal
    import subprocess
    import sys

    import sklearn_cxr._persistence as persistence

    source, X, _ = saved_model
    clf = PretrainedCNNClassifier.load(source)
    folder = tmp_path / "models"
    folder.mkdir()
    # a save in progress in another process: its temporary file is locked
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, tempfile, time\n"
         "fd, p = tempfile.mkstemp(dir=sys.argv[1], prefix='.tmp-', suffix='.cxr')\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print(p, flush=True)\n"
         "time.sleep(120)\n", str(folder)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        live = writer.stdout.readline().strip()
        target = folder / "model.cxr"
        clf.save(target)
        assert os.path.exists(live)  # not removed under a running save
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
        writer.stdout.close()
    os.chmod(target, 0o640)
    clf.save(target)
    assert not os.path.exists(live)  # the killed save's file is gone
    assert stat_mode(target) == 0o640  # kept the replaced file's permissions
    umask = os.umask(0)
    os.umask(umask)
    clf.save(folder / "new.cxr")
    assert stat_mode(folder / "new.cxr") == 0o666 & ~umask
    # a save that fails leaves no temporary file and the old file intact
    before = target.read_bytes()

    def broken(obj):
        raise OSError("disk full")

    monkeypatch.setattr(persistence, "_skops_dumps", broken)
    with pytest.raises(OSError, match="disk full"):
        clf.save(target)
    assert sorted(p.name for p in folder.iterdir()) == ["model.cxr", "new.cxr"]
    assert target.read_bytes() == before


def stat_mode(path):
    import stat

    return stat.S_IMODE(os.stat(path).st_mode)
