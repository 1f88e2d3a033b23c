"""The MLflow pyfunc wrapper: round trip, hostile inputs, serving over HTTP."""

import base64
import io
import json
import os
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

import pandas as pd  # noqa: E402  (an MLflow dependency)
from _helpers import tiny_resnet_classifier  # noqa: E402

from sklearn_cxr.mlflow import (  # noqa: E402
    encode_image_file,
    log_model,
    save_model,
    to_model_input,
)


def _images(n=8, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 200, (n, 40, 36), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    X[y == "PNEUMONIA", 8:30, 8:28] = 255
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _images()
    # the safe format needs a backbone by name
    return tiny_resnet_classifier("features").fit(X, y), X


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A local MLflow file store, as a team without a tracking server has."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def logged(fitted, file_store):
    clf, _ = fitted
    with mlflow.start_run():
        info = log_model(clf, "cxr")
    return info


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(side=50_000):
    """A valid 8x8 PNG whose header claims side x side pixels."""
    data = bytearray(_png_bytes(np.zeros((8, 8), dtype=np.uint8)))
    struct.pack_into(">II", data, 16, side, side)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class _Payload:
    """Unpickling it would create ``marker``: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _proba(frame, classes):
    return frame[[f"proba_{c}" for c in classes]].to_numpy()


# ------------------------------------------------------------------ round trip
def test_round_trip_paths_base64_and_pixels(fitted, logged, tmp_path):
    clf, X = fitted
    expected = clf.predict_proba(X)
    model = mlflow.pyfunc.load_model(logged.model_uri)
    by_pixels = model.predict(to_model_input(X))
    assert by_pixels["label"].tolist() == clf.predict(X).tolist()
    assert np.abs(_proba(by_pixels, clf.classes_) - expected).max() < 1e-6
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(image).save(paths[-1])
    by_paths = model.predict(to_model_input(paths))
    assert np.abs(_proba(by_paths, clf.classes_) - expected).max() < 1e-6
    encoded = pd.DataFrame({"image": [encode_image_file(p) for p in paths]})
    by_base64 = model.predict(encoded)
    assert np.abs(_proba(by_base64, clf.classes_) - expected).max() < 1e-6
    # the signature says what the model takes and gives
    signature = model.metadata.get_input_schema().input_names()
    assert signature == ["image", "pixels"]
    outputs = model.metadata.get_output_schema().input_names()
    assert outputs == ["label", "proba_NORMAL", "proba_PNEUMONIA"]


def test_nothing_is_pickled(logged):
    """The model is the package's safe file plus code; no pickle anywhere."""
    local = mlflow.artifacts.download_artifacts(logged.model_uri)
    names = sorted(
        os.path.relpath(os.path.join(root, f), local)
        for root, _, files in os.walk(local)
        for f in files
    )
    assert "artifacts/model.cxr" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))]
    for name in names:
        with open(os.path.join(local, name), "rb") as handle:
            head = handle.read(2)
        # a pickle stream (protocol 2+) starts with b"\x80" and its protocol
        assert not (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"), name
    with open(os.path.join(local, "MLmodel")) as handle:
        assert "mlflow.pyfunc.loaders.code_model" in handle.read()


def test_save_model_folder(fitted, tmp_path):
    clf, X = fitted
    path = save_model(clf, tmp_path / "model", allow_paths=False)
    model = mlflow.pyfunc.load_model(path)
    got = model.predict(to_model_input(X[:3]))
    assert np.abs(_proba(got, clf.classes_) - clf.predict_proba(X[:3])).max() < 1e-6


def test_log_model_refuses_other_objects(file_store):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="PretrainedCNNClassifier"):
        log_model(LogisticRegression(), "m")


# ------------------------------------------------------------- hostile inputs
def _bad_frames(tmp_path):
    marker = tmp_path / "pwned"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pickled = pickle.dumps(_Payload(str(marker)))

    def encoded(data):
        return pd.DataFrame({"image": [base64.b64encode(data).decode()]})

    return marker, [
        (pd.DataFrame({"image": ["not base64 !"]}), "base64"),
        (encoded(b"hello"), "not a JPEG, PNG, TIFF or BMP image"),
        (encoded(_bomb_png()), "too large"),
        (encoded(pickled), "not a JPEG, PNG, TIFF or BMP image"),
        (pd.DataFrame({"image": [str(fifo)]}), "base64"),  # never opened
        (pd.DataFrame({"pixels": [[[0, 300], [1, 2]]]}), r"\[0, 255\]"),
        # MLflow's own schema check refuses a flat list before the model
        (pd.DataFrame({"pixels": [[1, 2, 3]]}), "enforce schema|signature"),
        (pd.DataFrame({"pixels": [[[1, 2], [3]]]}), "rectangular"),
        (
            pd.DataFrame({"image": ["x"], "pixels": [[[1, 2], [3, 4]]]}),
            "exactly one",
        ),
    ]


def test_hostile_inputs_are_refused_clearly(logged, tmp_path):
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(logged.model_uri)
    marker, cases = _bad_frames(tmp_path)
    for frame, message in cases:
        with pytest.raises(MlflowException, match=message) as info:
            model.predict(frame)
        assert info.value.get_http_status_code() == 400
    assert not marker.exists()


def test_size_limits(logged, monkeypatch):
    """Over-large inputs are refused before they are decoded."""
    from mlflow.exceptions import MlflowException

    import sklearn_cxr.mlflow as cxr_mlflow

    model = mlflow.pyfunc.load_model(logged.model_uri)
    png = _png_bytes(np.zeros((64, 64), dtype=np.uint8))
    monkeypatch.setattr(cxr_mlflow, "MAX_IMAGE_BYTES", len(png) // 2)
    frame = pd.DataFrame({"image": [base64.b64encode(png).decode()]})
    with pytest.raises(MlflowException, match="over .* bytes"):
        model.predict(frame)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(MlflowException, match="over the limit of 100"):
        model.predict(pd.DataFrame({"pixels": [np.zeros((20, 20), int).tolist()]}))


def test_paths_can_be_refused(fitted, tmp_path):
    from mlflow.exceptions import MlflowException

    clf, X = fitted
    image = tmp_path / "a.png"
    Image.fromarray(X[0]).save(image)
    model = mlflow.pyfunc.load_model(
        save_model(clf, tmp_path / "model", allow_paths=False)
    )
    with pytest.raises(MlflowException, match="is not base64"):
        model.predict(pd.DataFrame({"image": [str(image)]}))


# ------------------------------------------------------------------ serving
def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url, body, content_type="application/json", timeout=60):
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _split(column, values):
    return json.dumps(
        {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}
    ).encode()


@pytest.fixture
def server(logged, file_store, tmp_path):
    """``mlflow models serve`` on localhost; always stopped."""
    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=file_store)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(os.path.dirname(os.path.dirname(__file__))), env.get("PYTHONPATH", "")]
    )
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", logged.model_uri,
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log_text = (tmp_path / "server.log").read_text()
                pytest.fail(f"server not ready: {log_text}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.mark.slow
def test_mlflow_serve_answers_and_refuses(fitted, server, tmp_path):
    clf, X = fitted
    expected = clf.predict_proba(X)
    invocations = f"{server}/invocations"
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(image).save(paths[-1])
    for body in (
        _split("image", [encode_image_file(p) for p in paths]),
        _split("image", paths),
        _split("pixels", [image.tolist() for image in X]),
        json.dumps(
            {"dataframe_records": [{"pixels": image.tolist()} for image in X]}
        ).encode(),
    ):
        status, text = _post(invocations, body)
        assert status == 200, text
        rows = json.loads(text)["predictions"]
        got = np.array([[row[f"proba_{c}"] for c in clf.classes_] for row in rows])
        assert np.abs(got - expected).max() < 1e-6
        assert [row["label"] for row in rows] == clf.predict(X).tolist()

    marker, cases = _bad_frames(tmp_path)
    for frame, message in cases:
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        status, text = _post(invocations, body)
        assert 400 <= status < 500, (status, text)
        assert re.search(message, text), text
    # a raw pickle as the body, and JSON that is not JSON
    payload = pickle.dumps(_Payload(str(marker)))
    for body, content_type in (
        (payload, "application/octet-stream"),
        (payload, "application/json"),
        (b"{not json", "application/json"),
    ):
        status, text = _post(invocations, body, content_type)
        assert 400 <= status < 500, (status, text)
    assert not marker.exists()
    # the server still answers after all that
    status, _ = _post(invocations, _split("pixels", [X[0].tolist()]))
    assert status == 200
