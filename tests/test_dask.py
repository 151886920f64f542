"""Scale-out through Dask: block-wise scoring of Dask arrays, and model search on a cluster."""

import threading
import tracemalloc

import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from skmcad import MCADDetector
from skmcad.model_selection import NormalTrainSplit

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
score_blocks = pytest.importorskip("skmcad.dask").score_blocks

# Small enough that a fit takes well under a second; the large scoring batch makes 10^6 rows
# quick to score.
TINY_TABULAR = dict(memory_size=4, n_scales=2, width=2, stage1_epochs=1, stage2_epochs=1,
                    random_state=0)


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(301, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def tabular_detector(rows):
    return MCADDetector(**TINY_TABULAR, batch_size=4096).fit(rows)


class RecordingDetector:
    """Wraps a fitted detector and records the number of rows of every scoring call."""

    def __init__(self, detector):
        self.detector = detector
        self.sizes = []
        self._lock = threading.Lock()  # blocks are scored from several threads

    def __sklearn_is_fitted__(self):
        return True

    def decision_function(self, X):
        with self._lock:
            self.sizes.append(len(X))
        return self.detector.decision_function(X)


# -- block-wise scoring -----------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [7, 64, 301])
def test_tabular_scores_equal_in_memory_scores(tabular_detector, rows, chunks):
    X = da.from_array(rows, chunks=(chunks, 2))  # split columns too: they must be merged
    scores = score_blocks(tabular_detector, X)
    assert scores.shape == (len(rows),) and scores.dtype == np.float64
    assert scores.chunks[0] == X.chunks[0]
    np.testing.assert_allclose(scores.compute(scheduler="threads"),
                               tabular_detector.decision_function(rows), rtol=1e-12)


@pytest.mark.parametrize("layout", ["(n, H, W)", "(n, H, W, C)", "(n, C, H, W)"])
def test_image_stack_scores_equal_in_memory_scores(layout):
    rng = np.random.default_rng(1)
    shape = {"(n, H, W)": (53, 8, 8), "(n, H, W, C)": (53, 8, 8, 3),
             "(n, C, H, W)": (53, 3, 8, 8)}[layout]
    images = rng.random(shape, dtype=np.float32)
    detector = MCADDetector(backbone="resnet", input_size=None, memory_size=4, n_scales=2,
                            width=2, stage1_epochs=1, stage2_epochs=1, batch_size=16,
                            random_state=0).fit(images)
    X = da.from_array(images, chunks=(11,) + (4,) * (len(shape) - 1))
    scores = score_blocks(detector, X).compute(scheduler="threads")
    np.testing.assert_allclose(scores, detector.decision_function(images), rtol=1e-5)
    labels = score_blocks(detector, X, method="predict")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels.compute(), detector.predict(images))


def test_million_rows_from_zarr_are_scored_in_blocks(tmp_path, tabular_detector):
    """10^6 rows (15 MB) are read, scored and written back one chunk at a time: no call sees
    more than a chunk, and numpy's allocations peak far below the size of the data."""
    n, chunk_rows = 1_000_000, 25_000
    source = zarr.open_array(str(tmp_path / "rows.zarr"), mode="w", shape=(n, 4),
                             chunks=(chunk_rows, 4), dtype="float32")
    rng = np.random.default_rng(2)
    for start in range(0, n, chunk_rows):
        source[start:start + chunk_rows] = rng.normal(size=(chunk_rows, 4))
    X = da.from_zarr(str(tmp_path / "rows.zarr"))
    target = zarr.open_array(str(tmp_path / "scores.zarr"), mode="w", shape=(n,),
                             chunks=(chunk_rows,), dtype="float64")
    # A first chunk before measuring: first calls import modules and fill caches, which
    # tracemalloc would count.
    da.store(score_blocks(tabular_detector, X[:chunk_rows]), target,
             regions=(slice(0, chunk_rows),), scheduler="threads", lock=False)
    recorder = RecordingDetector(tabular_detector)

    tracemalloc.start()  # numpy's buffers are traced: materialising X alone would be 15 MB
    try:
        da.store(score_blocks(recorder, X), target, scheduler="threads", num_workers=2,
                 lock=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert max(recorder.sizes) == chunk_rows and sum(recorder.sizes) == n
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MB for {X.nbytes / 2**20:.0f} MB"
    sample = np.sort(np.random.default_rng(3).choice(n, 500, replace=False))
    np.testing.assert_allclose(target.oindex[sample],
                               tabular_detector.decision_function(source.oindex[sample]),
                               rtol=1e-12)


def test_non_dask_input_and_unfitted_detector_are_refused(tabular_detector, rows):
    with pytest.raises(TypeError, match="dask.array.from_array"):
        score_blocks(tabular_detector, rows)
    with pytest.raises(NotFittedError):
        score_blocks(MCADDetector(), da.from_array(rows))
    with pytest.raises(ValueError, match="method must be one of"):
        score_blocks(tabular_detector, da.from_array(rows), method="fit")
    with pytest.raises(TypeError, match="no method 'decision_function'"):
        score_blocks(object(), da.from_array(rows))
    with pytest.raises(ValueError, match="2-D"):
        score_blocks(tabular_detector, da.from_array(rows[:, 0]))


# -- model search on a cluster ----------------------------------------------------------------

def _search():
    detector = MCADDetector(**TINY_TABULAR, batch_size=64)  # n_jobs=None: one thread a fit
    return GridSearchCV(detector, {"memory_size": [2, 4]},
                        scoring="roc_auc",
                        cv=NormalTrainSplit(n_splits=3, shuffle=True, random_state=0))


@pytest.fixture(scope="module")
def labelled_rows():
    """270 normal rows and 30 anomalies lying further from the centre."""
    rng = np.random.default_rng(4)
    normal = rng.normal(size=(270, 4))
    anomalies = rng.normal(size=(30, 4)) * 3.0
    X = np.vstack([normal, anomalies]).astype(np.float32)
    y = np.r_[np.zeros(270, dtype=int), np.ones(30, dtype=int)]
    return X, y


@pytest.mark.slow  # about 20 s: two worker processes import torch and warm up
def test_grid_search_on_a_local_dask_cluster_matches_the_local_search(labelled_rows):
    X, y = labelled_rows
    local = _search().fit(X, y)
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=":0") as cluster,
          distributed.Client(cluster) as client,
          joblib.parallel_backend("dask")):
        on_dask = _search().fit(X, y)
        # the fits really ran on the cluster's workers, not in this process
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and sum(executed.values()) >= 1
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], rtol=1e-12)
    assert on_dask.best_params_ == local.best_params_
    assert len(set(local.cv_results_["mean_test_score"])) == 2  # the search distinguishes
