"""Scale-out on Dask: 1 vs 2 workers, for model search and for scoring large arrays.

Run it as ``python -m skmcad.benchmark.scaling --out DIR`` (a few minutes on 2 cores;
``--quick`` for a check in under a minute). It needs the ``dask`` extra. For each worker
count it starts a ``distributed.LocalCluster`` of that many single-threaded worker
processes and measures:

- **search**: fits per minute of a ``GridSearchCV`` over ``memory_size`` run through
  joblib's Dask backend, with ``NormalTrainSplit`` folds and ``scoring="roc_auc"``:
  a tabular ``MCADDetector`` (default configuration) on scikit-learn's breast cancer data
  (benign tumours normal, a few malignant ones the anomalies), and, unless
  ``--no-images``, the default image detector (pretrained EfficientNet-Lite0, 96 px) on
  scikit-learn's digits (digit 0 normal, 10 % other digits);
- **scoring**: rows per second of ``skmcad.dask.score_blocks`` on rows read from a zarr
  store (2 million rows by default, written to a temporary folder in chunks) and written
  back to a zarr store of scores.

Every worker first imports the package and makes a small fit, so the figures are the
steady throughput of a running cluster; the seconds that warm-up took are reported apart
(``startup_s``). It prints a table and writes ``DIR/results.csv``.
"""

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

TABULAR_GRID = {"memory_size": [8, 16, 32, 64]}
IMAGE_GRID = {"memory_size": [64, 256]}
N_FEATURES = 8
# One torch thread per call (the default), as the workers have one thread each.
N_JOBS = None
# --quick: a tiny network, a small grid and fewer rows; checks the benchmark, measures little.
QUICK_PARAMS = dict(n_scales=2, width=2, stage1_epochs=1, stage2_epochs=1)
QUICK_GRID = {"memory_size": [4, 8]}


# -- data -------------------------------------------------------------------------------------

def breast_cancer_rows(seed=0):
    """Benign tumours (normal, 0) and one malignant tumour in ten (anomalies, 1), float32."""
    from sklearn.datasets import load_breast_cancer

    X, target = load_breast_cancer(return_X_y=True)  # target 1 is benign
    return _one_class_mix(X[target == 1], X[target == 0], seed)


def digit_images(seed=0):
    """Digit 0 (normal) and other digits (anomalies, 10 %), as (n, 8, 8) images in [0, 1]."""
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 8, 8)
    return _one_class_mix(images[digit == 0], images[digit != 0], seed)


def _one_class_mix(normal, others, seed):
    rng = np.random.default_rng(seed)
    n_anomalies = max(len(normal) // 9, 3)  # a tenth of the mix
    anomalies = others[rng.choice(len(others), n_anomalies, replace=False)]
    X = np.concatenate([normal, anomalies]).astype(np.float32)
    y = np.r_[np.zeros(len(normal), dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


def write_rows(path, n_rows, chunk_rows, seed=0):
    """A zarr store of ``n_rows`` standard normal float32 rows, written chunk by chunk."""
    import zarr

    store = zarr.open_array(path, mode="w", shape=(n_rows, N_FEATURES),
                            chunks=(chunk_rows, N_FEATURES), dtype="float32")
    rng = np.random.default_rng(seed)
    for start in range(0, n_rows, chunk_rows):
        rows = min(chunk_rows, n_rows - start)
        store[start:start + rows] = rng.standard_normal((rows, N_FEATURES), dtype=np.float32)
    return store


# -- measurements -----------------------------------------------------------------------------

def make_search(params, grid, n_splits=3):
    """The search measured: refit=False, since the final refit runs in the client only."""
    from sklearn.model_selection import GridSearchCV

    from skmcad import MCADDetector
    from skmcad.model_selection import NormalTrainSplit

    detector = MCADDetector(random_state=0, n_jobs=N_JOBS, **params)
    return GridSearchCV(detector, grid, scoring="roc_auc",
                        cv=NormalTrainSplit(n_splits=n_splits, shuffle=True, random_state=0),
                        refit=False, error_score="raise")


def time_search(search, X, y):
    """Seconds of ``search.fit(X, y)`` through joblib's Dask backend, and the fits made."""
    import joblib

    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    seconds = time.perf_counter() - start
    n_fits = len(search.cv_results_["params"]) * search.n_splits_
    return seconds, n_fits, float(np.max(search.cv_results_["mean_test_score"]))


def time_scoring(detector, source_path, target_path):
    """Seconds to score every row of the zarr store at ``source_path`` into a new store."""
    import dask.array as da
    import zarr

    from skmcad.dask import score_blocks

    X = da.from_zarr(source_path)
    target = zarr.open_array(target_path, mode="w", shape=(X.shape[0],),
                             chunks=(X.chunks[0][0],), dtype="float64")
    # The first chunk alone first: it ships the detector and warms each worker's reader.
    da.store(score_blocks(detector, X[:X.chunks[0][0]]), target,
             regions=(slice(0, X.chunks[0][0]),), lock=False)
    start = time.perf_counter()
    da.store(score_blocks(detector, X), target, lock=False)
    return time.perf_counter() - start, X.shape[0]


def _warm_worker(images):
    """Import the package and fit once, so that no measurement pays a process's first fit
    (imports, torch's lazy initialisation, loading the pretrained weights)."""
    from skmcad import MCADDetector

    rng = np.random.default_rng(0)
    tiny = dict(memory_size=2, n_scales=2, stage1_epochs=1, stage2_epochs=1, random_state=0)
    MCADDetector(width=2, n_jobs=N_JOBS, **tiny).fit(rng.normal(size=(40, N_FEATURES)))
    if images:
        MCADDetector(batch_size=8, n_jobs=N_JOBS, **tiny).fit(rng.random((16, 8, 8)))
    return True


# -- the benchmark ----------------------------------------------------------------------------

def run_cluster(n_workers, tasks, scoring):
    """All measurements on one LocalCluster of ``n_workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    rows = []
    start = time.perf_counter()
    with (LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                       dashboard_address=":0", silence_logs=logging.ERROR) as cluster,
          Client(cluster) as client):
        client.wait_for_workers(n_workers)  # client.run reaches only the workers up already
        client.run(_warm_worker, any(task["images"] for task in tasks))
        startup = time.perf_counter() - start
        for task in tasks:
            seconds, n_fits, best = time_search(make_search(task["params"], task["grid"]),
                                                task["X"], task["y"])
            rows.append(dict(task=task["name"], workers=n_workers, work=n_fits, unit="fits",
                             seconds=seconds, rate=60 * n_fits / seconds, rate_unit="fits/min",
                             best_roc_auc=best, startup_s=startup))
        if scoring is not None:
            seconds, n_rows = time_scoring(scoring["detector"], scoring["source"],
                                           scoring["target"])
            rows.append(dict(task="score_blocks, tabular rows from zarr", workers=n_workers,
                             work=n_rows, unit="rows", seconds=seconds, rate=n_rows / seconds,
                             rate_unit="rows/s", best_roc_auc=np.nan, startup_s=startup))
    return rows


def search_tasks(quick, images):
    """The searches to time: tabular always, digits images unless quick or disabled."""
    X, y = breast_cancer_rows()
    params, grid = (QUICK_PARAMS, QUICK_GRID) if quick else ({}, TABULAR_GRID)
    tasks = [dict(name="search, tabular (breast cancer)", X=X, y=y, params=params, grid=grid,
                  images=False)]
    if images and not quick:
        X, y = digit_images()
        tasks.append(dict(name="search, images (digits, EfficientNet-Lite0)", X=X, y=y,
                          params={}, grid=IMAGE_GRID, images=True))
    return tasks


def scoring_setup(folder, n_rows, chunk_rows, quick):
    """A detector fitted on normal rows, and the zarr store of rows it will score."""
    from skmcad import MCADDetector

    source = os.path.join(folder, "rows.zarr")
    write_rows(source, n_rows, chunk_rows)
    train = np.random.default_rng(1).standard_normal((2000, N_FEATURES), dtype=np.float32)
    params = QUICK_PARAMS if quick else {}
    detector = MCADDetector(random_state=0, n_jobs=N_JOBS, **params).fit(train)
    return dict(detector=detector, source=source, target=os.path.join(folder, "scores.zarr"))


def add_speedup(table):
    """Each rate over the rate of the fewest workers for the same task."""
    baseline = table["task"].map(table.sort_values("workers").groupby("task")["rate"].first())
    return table.assign(speedup=table["rate"] / baseline)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skmcad.benchmark.scaling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for results.csv")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare (default: 1 2)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows to score (default 2,000,000; 100,000 with --quick)")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="rows per zarr chunk (default 100,000; 20,000 with --quick)")
    parser.add_argument("--no-images", action="store_true",
                        help="skip the image search (the slowest part)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny configuration and sizes: checks that it runs (< 1 minute)")
    args = parser.parse_args(argv)
    n_rows = args.rows or (100_000 if args.quick else 2_000_000)
    chunk_rows = args.chunk_rows or (20_000 if args.quick else 100_000)

    tasks = search_tasks(args.quick, images=not args.no_images)
    results = []
    with tempfile.TemporaryDirectory(prefix="skmcad-scaling-") as folder:
        scoring = scoring_setup(folder, n_rows, chunk_rows, args.quick)
        for n_workers in args.workers:
            print(f"{n_workers} worker(s)...", file=sys.stderr, flush=True)
            results.extend(run_cluster(n_workers, tasks, scoring))

    table = add_speedup(pd.DataFrame(results))
    os.makedirs(args.out, exist_ok=True)
    table.to_csv(os.path.join(args.out, "results.csv"), index=False)
    print(f"{os.cpu_count()} CPU cores; one thread per worker process"
          + (" (--quick: not a measurement)" if args.quick else ""))
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
