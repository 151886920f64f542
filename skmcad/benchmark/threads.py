"""Fit and scoring time against ``n_jobs``, on idle cores and with one core busy.

Run it as ``python -m skmcad.benchmark.threads --out DIR`` (a few minutes on 2 cores, on
scikit-learn's bundled digits and on synthetic rows; nothing else should run meanwhile). For
each input kind (the default image detector: the pretrained backbone at 96 px; the default
tabular detector), each ``n_jobs`` in ``--n-jobs`` and each load ("idle", and "1 core busy":
one other process spinning on a core for the whole measurement), it times ``fit`` and
``decision_function`` and writes ``DIR/results.csv``.
"""

import argparse
import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from skmcad import MCADDetector


def _spin():
    while True:
        pass


@contextlib.contextmanager
def busy_core(busy):
    """One other process keeping a core busy while the block runs (nothing when not busy)."""
    if not busy:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    process.start()
    time.sleep(0.5)  # let it start spinning before the measurement
    try:
        yield
    finally:
        process.terminate()
        process.join()


def workloads(n_fit_images, n_score_images, n_rows):
    """(kind, training set, scoring set) for images and tables."""
    X, _ = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)
    scored = np.resize(images, (n_score_images, 8, 8))  # repeats digits to the size asked
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(2 * n_rows, 20)) @ rng.normal(size=(20, 20))
    return [("image", images[:n_fit_images], scored), ("tabular", rows[:n_rows], rows[n_rows:])]


def measure(kind, X_fit, X_score, n_jobs, busy):
    """Seconds of ``fit`` and scored samples per second, with the given threads and load."""
    with busy_core(busy):
        start = time.perf_counter()
        det = MCADDetector(n_jobs=n_jobs, random_state=0).fit(X_fit)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        det.decision_function(X_score)
        score_s = time.perf_counter() - start
    return {"input": kind, "load": "1 core busy" if busy else "idle", "n_jobs": n_jobs,
            "n_fit": len(X_fit), "fit_s": round(fit_s, 2), "n_scored": len(X_score),
            "samples_per_s": round(len(X_score) / score_s, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skmcad.benchmark.threads",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmark_results/threads", metavar="DIR")
    parser.add_argument("--n-jobs", default="1,2", metavar="LIST",
                        help="comma list of n_jobs values (default: 1,2)")
    parser.add_argument("--fit-images", type=int, default=200, metavar="N")
    parser.add_argument("--score-images", type=int, default=1000, metavar="N")
    parser.add_argument("--rows", type=int, default=5000, metavar="N",
                        help="training rows, and as many scored (default: 5000)")
    args = parser.parse_args(argv)
    n_jobs_values = [int(v) for v in args.n_jobs.split(",")]
    rows = []
    for kind, X_fit, X_score in workloads(args.fit_images, args.score_images, args.rows):
        MCADDetector(random_state=0).fit(X_fit[:40])  # warm-up: imports, weights, allocator
        for busy in (False, True):
            for n_jobs in n_jobs_values:
                rows.append(measure(kind, X_fit, X_score, n_jobs, busy))
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "results.csv", index=False)
    print(f"\n{os.cpu_count()} cores\n" + table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
