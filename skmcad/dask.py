"""Score data larger than memory with a fitted detector, block by block, on Dask.

Import it explicitly (``import skmcad.dask``); it needs the ``dask`` extra
(``pip install "skmcad[dask]"``), which ``import skmcad`` does not.

Model search needs nothing from this module: scikit-learn's searches run on a Dask cluster
through joblib's Dask backend (``with joblib.parallel_backend("dask"): search.fit(X, y)``).
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    import dask
    import dask.array as da
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'skmcad.dask needs dask: pip install "skmcad[dask]" (dask[array], distributed, zarr).'
    ) from error

__all__ = ["score_blocks"]

# Output dtype of each scoring method: PyOD's predict returns 0/1 labels.
_METHOD_DTYPES = {
    "decision_function": np.float64,
    "score_samples": np.float64,
    "predict": np.int64,
}


def score_blocks(detector, X, method="decision_function"):
    """Score a Dask array with a fitted detector, one block of rows at a time.

    Each block of rows (axis 0) is scored by one call of ``getattr(detector, method)``, so
    memory is bounded by the block size, whatever the length of ``X``. Nothing is computed
    until the result is (``.compute()``, ``da.store``, ``.to_zarr``).

    Parameters
    ----------
    detector : fitted estimator
        Any fitted object with the method named by ``method``, for example a fitted
        :class:`skmcad.MCADDetector` or a PyOD detector.
    X : dask.array.Array of shape (n, d), (n, H, W), (n, H, W, C) or (n, C, H, W)
        Samples along axis 0, laid out as at fit, for example ``da.from_zarr(path)`` or
        ``da.from_array(np.load(path, mmap_mode="r"), chunks=(100_000, -1))``. Its row
        chunks are kept; chunks along the other axes are merged, since a detector needs
        whole samples.
    method : {"decision_function", "predict", "score_samples"}, default="decision_function"
        The detector's method to call on each block.

    Returns
    -------
    scores : dask.array.Array of shape (n,)
        Lazy scores, float64 (int64 labels for ``"predict"``), chunked as ``X``'s rows.

    Raises
    ------
    TypeError
        If ``X`` is not a Dask array, or ``detector`` lacks ``method``.
    ValueError
        If ``method`` is not one of the three, or ``X`` is not 2- to 4-D.
    sklearn.exceptions.NotFittedError
        If ``detector`` has a ``fit`` method and is not fitted (scikit-learn's
        ``check_is_fitted``); a subclass of ValueError.

    Notes
    -----
    Blocks are scored in parallel by Dask's scheduler: on one machine each thread of the
    threaded scheduler calls the detector, each with the detector's ``n_jobs`` torch
    threads (one by default); on a ``distributed`` cluster
    the detector is sent once to each worker. Choose row chunks of a few hundred MB at
    most: a chunk is read and converted whole before it is scored in ``batch_size``
    batches.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skmcad import MCADDetector
    >>> from skmcad.dask import score_blocks
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> det = MCADDetector(memory_size=4, n_scales=2, width=2, stage1_epochs=1,
    ...                    stage2_epochs=1, random_state=0).fit(X)
    >>> scores = score_blocks(det, da.from_array(X, chunks=(15, 3)))
    >>> scores.chunks, scores.dtype
    (((15, 15, 10),), dtype('float64'))
    >>> np.allclose(scores.compute(), det.decision_function(X))
    True
    >>> score_blocks(det, da.from_array(X, chunks=(15, 3)), method="predict").dtype
    dtype('int64')
    """
    dtype = _check_method(detector, method)
    if hasattr(detector, "fit"):  # scoring-only wrappers have no fitted state to check
        check_is_fitted(detector)
    X = _check_dask_array(X)
    # Whole samples in every block; the user's row chunking is left as given.
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    # One delayed reference rather than the detector itself in the graph: it spares
    # hashing the model's weights to name the result, and a distributed scheduler ships
    # it to each worker once.
    model = dask.delayed(detector, pure=False, traverse=False)
    return X.map_blocks(_score_block, model, method, dtype,
                        drop_axis=list(range(1, X.ndim)), dtype=dtype,
                        meta=np.empty((0,), dtype=dtype), token="score_blocks")


def _score_block(block, detector, method, dtype):
    """Scores of one block of rows, as a 1-D array of ``dtype``."""
    if len(block) == 0:  # empty chunks happen (after filtering); detectors reject them
        return np.empty((0,), dtype=dtype)
    scores = np.asarray(getattr(detector, method)(block), dtype=dtype)
    if scores.shape != (len(block),):
        raise ValueError(f"{type(detector).__name__}.{method} returned shape {scores.shape} "
                         f"for a block of {len(block)} samples; expected ({len(block)},).")
    return scores


def _check_method(detector, method):
    """The output dtype of ``method``, after checking that ``detector`` has it."""
    if method not in _METHOD_DTYPES:
        raise ValueError(f"method must be one of {sorted(_METHOD_DTYPES)}; got {method!r}.")
    if not callable(getattr(detector, method, None)):
        raise TypeError(f"{type(detector).__name__} has no method {method!r} to score with.")
    return _METHOD_DTYPES[method]


def _check_dask_array(X):
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask.array.Array, got {type(X).__name__}. Wrap in-memory or "
            f"memory-mapped data with dask.array.from_array(X, chunks=(rows, -1)), or open a "
            f"zarr store with dask.array.from_zarr(path); in-memory data can also be scored "
            f"directly with the detector's own methods.")
    if not 2 <= X.ndim <= 4:
        raise ValueError(f"X must be 2-D (n, d) rows or a 3-D / 4-D image stack with samples "
                         f"along axis 0; got {X.ndim}-D input of shape {X.shape}.")
    return X
