"""Beyond one process: a study shared by worker processes, grid search on Dask."""

import os
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from _helpers import TinyNet
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from sklearn_cxr import PretrainedCNNClassifier

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS_DIR)

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import optuna
    from sklearn_cxr import PretrainedCNNClassifier
    from sklearn_cxr.tuning import tune

    url, name, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, sys.argv[4])  # the tests folder
    from _helpers import TinyNet
    rng = np.random.RandomState(0)
    X = rng.randint(0, 120, (24, 32, 32), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * 12)
    X[y == "PNEUMONIA", 8:24, 8:24] = 255
    # SQLite serialises writers; wait for the lock rather than fail.
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": 120}})
    clf = PretrainedCNNClassifier(backbone=TinyNet(), weights=None,
                                  mode="features", image_size=32, random_state=0)
    tune(clf, X, y, cv=2, n_trials=2, storage=storage, study_name=name,
         random_state=seed, refit=False)
    """
)


def test_two_worker_processes_share_one_sqlite_study(tmp_path):
    optuna = pytest.importorskip("optuna", reason="the tuning extra is missing")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # As on a cluster: create the study once, then start the workers.
    optuna.create_study(storage=url, study_name="shared", direction="maximize")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, "shared", str(seed), TESTS_DIR],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name="shared", storage=url)
    assert len(study.trials) == 4  # n_trials=2 counted per worker
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in study.trials}
    assert pids == {w.pid for w in workers}
    assert len({t.number for t in study.trials}) == 4
    # n_trials=0 joins the finished study and only refits its best trial.
    from sklearn_cxr.tuning import tune

    rng = np.random.RandomState(0)
    X = rng.randint(0, 120, (24, 32, 32), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * 12)
    X[y == "PNEUMONIA", 8:24, 8:24] = 255
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, mode="features", image_size=32,
        random_state=0,
    )
    study, best = tune(clf, X, y, cv=2, n_trials=0, storage=url, study_name="shared")
    assert len(study.trials) == 4
    assert best.final_estimator_.C == pytest.approx(
        study.best_params["final_estimator__C"]
    )


def test_grid_search_on_a_dask_cluster(blobs):
    distributed = pytest.importorskip(
        "distributed", reason="the distributed extra (dask) is missing"
    )
    X, y, groups = blobs
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, mode="features", image_size=32,
        random_state=0,
    )
    grid = {"final_estimator__C": [0.01, 1.0]}
    cv = StratifiedGroupKFold(2)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        search = GridSearchCV(clf, grid, cv=cv, scoring="roc_auc", n_jobs=2)
        with distributed.get_task_stream(client) as tasks:
            with joblib.parallel_backend("dask"):
                search.fit(X, y, groups=groups)
        workers = set(cluster.workers.values())
    assert tasks.data, "no task ran on the Dask cluster"
    worker_addresses = {w.address for w in workers}
    assert {task["worker"] for task in tasks.data} <= worker_addresses
    local = GridSearchCV(clf, grid, cv=cv, scoring="roc_auc", n_jobs=1)
    local.fit(X, y, groups=groups)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert set(search.predict(X)) <= {"NORMAL", "PNEUMONIA"}


def test_tune_on_a_journal_file_storage(tmp_path, blobs):
    optuna = pytest.importorskip("optuna", reason="the tuning extra is missing")
    from sklearn_cxr.tuning import tune

    X, y, groups = blobs
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, mode="features", image_size=32,
        random_state=0,
    )
    log = tmp_path / "journal.log"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(log))
    )
    tune(clf, X, y, groups=groups, cv=2, n_trials=1, storage=storage,
         study_name="journal", refit=False)
    # A second process would open the same file: reopen it from scratch.
    reopened = optuna.load_study(
        study_name="journal",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(log))
        ),
    )
    assert [t.state for t in reopened.trials] == [optuna.trial.TrialState.COMPLETE]
    assert len(reopened.trials[0].user_attrs["cv_scores"]) == 2
