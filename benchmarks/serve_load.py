"""Bounded load test of ``mlflow models serve`` on a sklearn_cxr model.

Fits a feature-mode EfficientNet-Lite0 (offline ImageNet weights) on a few real
radiographs, logs it with :func:`sklearn_cxr.mlflow.log_model` to a temporary
local MLflow store, serves it on localhost with ``mlflow models serve
--env-manager local``, then sends ``--requests`` requests (one image each, as
base64 JPEG bytes, ``--concurrency`` at once) and checks every answer against
``predict_proba`` of its own image: a mixed-up answer counts as an error.
Reports requests per second and the p50 / p95 latency; results go to
``benchmarks/results/serve_load_*.json``.

    python benchmarks/serve_load.py --requests 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common
import numpy as np
from _common import BACKBONE, load_data, machine, save_json

REPO = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url, body, timeout=300):
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _start_server(model_uri, tracking_uri, workers, log_path):
    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    while True:
        if process.poll() is not None:
            raise SystemExit(f"server exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return process, url, time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > 300:
            _stop(process)
            raise SystemExit(f"server not ready after 300 s; see {log_path}")
        time.sleep(0.5)


def _stop(process):
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--distinct", type=int, default=50,
                        help="distinct images sent (cycled)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes")
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    if args.requests > 500:
        raise SystemExit("--requests is capped at 500: this is a bounded test.")

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow

    from sklearn_cxr import PretrainedCNNClassifier
    from sklearn_cxr.mlflow import encode_image_file, log_model

    data = load_data()
    rng = np.random.RandomState(0)
    order = rng.permutation(len(data["paths"]))
    train = order[: args.n_train]
    sent = order[args.n_train : args.n_train + args.distinct]
    clf = PretrainedCNNClassifier(
        backbone=BACKBONE, weights=str(_common.WEIGHTS), mode="features",
        image_size=args.image_size, random_state=0,
    ).fit(data["paths"][train], data["y"][train])
    sent_paths = data["paths"][sent].tolist()
    expected = clf.predict_proba(sent_paths)
    bodies = [
        json.dumps(
            {"dataframe_split": {"columns": ["image"],
                                 "data": [[encode_image_file(p)]]}}
        ).encode()
        for p in sent_paths
    ]

    with tempfile.TemporaryDirectory(prefix="serve_load_") as folder:
        tracking = Path(folder, "mlruns").as_uri()
        mlflow.set_tracking_uri(tracking)
        with mlflow.start_run():
            info = log_model(clf, "cxr", allow_paths=False)
        process, url, startup = _start_server(
            info.model_uri, tracking, args.workers, Path(folder, "server.log")
        )
        try:
            status, text = _post(f"{url}/invocations", bodies[0])  # warm-up
            if status != 200:
                raise SystemExit(f"warm-up request failed: {status} {text}")

            def one(i):
                k = i % len(bodies)
                start = time.perf_counter()
                status, text = _post(f"{url}/invocations", bodies[k])
                latency = time.perf_counter() - start
                if status != 200:
                    return latency, f"HTTP {status}: {text[:200]}"
                row = json.loads(text)["predictions"][0]
                got = np.array([row[f"proba_{c}"] for c in clf.classes_])
                if np.abs(got - expected[k]).max() > 1e-6:
                    return latency, f"request {i}: answer differs from image {k}"
                return latency, None

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(one, range(args.requests)))
            elapsed = time.perf_counter() - start
        finally:
            _stop(process)

    latencies = np.array([r[0] for r in results])
    errors = [r[1] for r in results if r[1]]
    result = {
        "machine": machine(),
        "args": vars(args),
        "backbone": BACKBONE,
        "server_startup_s": startup,
        "requests": args.requests,
        "errors": len(errors),
        "first_errors": errors[:5],
        "elapsed_s": elapsed,
        "requests_per_s": args.requests / elapsed,
        "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "load_avg_end": os.getloadavg(),
    }
    name = (
        f"serve_load_{args.image_size}px_r{args.requests}_c{args.concurrency}"
        f"_w{args.workers}.json"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print("wrote", save_json(name, result))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
