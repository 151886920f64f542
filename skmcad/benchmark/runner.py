"""Running detectors on tasks and recording metrics, time and memory for each run."""

from dataclasses import replace

import numpy as np
import pandas as pd
from pyod.utils.utility import precision_n_scores
from sklearn.metrics import average_precision_score, roc_auc_score

from skmcad.inputs import infer_layout
from skmcad.metrics import aupro, pixel_auroc

from . import detectors as detectors_module
from .measure import PeakGPUMemory, PeakRSS, Stopwatch

MAX_ERROR_CHARS = 500

# Column order of results.csv.
# anomaly_ratio, n_labelled and labelled_classes describe the unbalanced protocol's training
# data (empty, 0 and empty in the one-class protocols). pixel_auroc and aupro are filled in
# the localisation protocols for detectors with an ``anomaly_map``; there, rows with a
# defect_class hold the metrics of the normal test images and that class's only (their
# times are empty: they are not separate runs). map_seconds: wall time of ``anomaly_map``
# on the test images, a second pass not counted in throughput.
COLUMNS = (
    "dataset", "anomaly_ratio", "subset", "defect_class", "seed", "detector", "status",
    "error", "auroc", "aucpr", "precision_at_n", "pixel_auroc", "aupro", "fit_seconds",
    "fit_cpu_seconds", "score_seconds", "throughput", "map_seconds", "peak_rss_mb",
    "peak_gpu_mb", "n_fit", "n_labelled", "n_test", "n_anomalies", "labelled_classes", "params",
)
# Measurements of a whole run, left empty in its per-defect-class rows.
TIME_COLUMNS = ("fit_seconds", "fit_cpu_seconds", "score_seconds", "throughput", "map_seconds",
                "peak_rss_mb", "peak_gpu_mb")


def model_input(X, flat_input):
    """Return ``X`` as rows ``(n, d)`` when ``flat_input``, else unchanged (a view, no copy)."""
    return X.reshape(len(X), -1) if flat_input and X.ndim > 2 else X


def _image_side(X):
    """Shorter side of the images ``X`` holds, in pixels; None for tables."""
    return infer_layout(X[:1], None).image_side


def score_metrics(y_true, scores):
    """Return AUROC, AUCPR (average precision) and precision@n of anomaly scores.

    Raises
    ------
    ValueError
        Scores of the wrong length or not all finite.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape != y_true.shape:
        raise ValueError(f"detector returned {scores.shape[0]} scores for {len(y_true)} samples")
    if not np.isfinite(scores).all():
        raise ValueError("detector returned non-finite scores")
    return {
        "auroc": roc_auc_score(y_true, scores),
        "aucpr": average_precision_score(y_true, scores),
        "precision_at_n": precision_n_scores(y_true, scores),
    }


def _error_text(exc):
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:MAX_ERROR_CHARS]


def fit_labels(spec, task):
    """Return the labels ``spec``'s detector is fitted with on ``task``: ``y_fit`` or None.

    Raises
    ------
    ValueError
        The detector requires labels and the task has none.
    """
    if spec.labels == "ignored":
        return None
    if task.y_fit is None and spec.labels == "required":
        raise ValueError("this detector needs labelled anomalies: run it in the unbalanced "
                         "protocol (--anomaly-ratio)")
    return task.y_fit


def _fit_and_score(detector, X_fit, y_fit, X_eval, record):
    """Fit and score, filling times in ``record`` as they become known; return scores."""
    with Stopwatch() as fit_clock:
        if y_fit is None:
            detector.fit(X_fit)
        else:
            detector.fit(X_fit, y_fit)
    record["fit_seconds"] = fit_clock.seconds
    record["fit_cpu_seconds"] = fit_clock.cpu_seconds
    with Stopwatch() as score_clock:
        scores = detector.decision_function(X_eval)
    record["score_seconds"] = score_clock.seconds
    record["throughput"] = len(X_eval) / max(score_clock.seconds, 1e-9)
    return scores


def run_one(name, task, dataset, context):
    """Build, fit and score one detector on one task; never raises for the detector's errors.

    The detector is fitted with ``fit(X, task.y_fit)`` when its spec uses labels and the
    task has them (unbalanced protocol), else with ``fit(X)``.

    Parameters
    ----------
    name : str
        Key of ``detectors.REGISTRY``.
    task : protocols.Task
    dataset : str
        Protocol name, recorded in the result.
    context : detectors.BuildContext
        Build settings; ``n_features`` and ``random_state`` are taken from ``task``.

    Returns
    -------
    record : dict
        One row of results.csv (keys ``COLUMNS``); ``status`` is ``"ok"`` or ``"failed"``
        with the exception in ``error``.
    """
    return run_rows(name, task, dataset, context)[0][0]


def run_rows(name, task, dataset, context, keep_maps=None):
    """Run one detector on one task as :func:`run_one`, with the localisation rows.

    With test masks (``task.masks_eval``), a detector with ``anomaly_map`` also gets
    ``pixel_auroc`` and ``aupro``, and with defect classes (``task.groups_eval``) one more
    row per defect class follows the run's row.

    Parameters
    ----------
    name, task, dataset, context
        As :func:`run_one`.
    keep_maps : array-like of int, default=None
        Test images whose anomaly maps are returned (for pictures).

    Returns
    -------
    records : list of dict
        The run's row, then one row per defect class (none when the run failed).
    maps : ndarray of shape (len(keep_maps), H, W) or None
        None when the detector has no map, the run failed or ``keep_maps`` is None.
    """
    record = dict.fromkeys(COLUMNS, np.nan)
    record.update(
        dataset=dataset, subset=task.subset, defect_class="", seed=task.seed, detector=name,
        status="ok", error="", params="", n_fit=len(task.X_fit), n_test=len(task.X_eval),
        n_anomalies=int(task.y_eval.sum()),
        anomaly_ratio=np.nan if task.anomaly_ratio is None else task.anomaly_ratio,
        n_labelled=0 if task.y_fit is None else int(task.y_fit.sum()),
        labelled_classes=" ".join(str(c) for c in task.labelled_classes),
    )
    # Looked up at call time so that a patched registry (tests, plug-ins) is honoured.
    spec = detectors_module.REGISTRY[name]
    X_fit = model_input(task.X_fit, spec.flat_input)
    X_eval = model_input(task.X_eval, spec.flat_input)
    n_features = int(np.prod(task.X_fit.shape[1:]))
    context = replace(context, n_features=n_features, random_state=task.seed,
                      image_side=_image_side(task.X_fit))
    scores = maps = None
    with PeakRSS() as rss, PeakGPUMemory() as gpu:
        try:
            y_fit = fit_labels(spec, task)
            detector = spec.build(context)
            record["params"] = detectors_module.describe(detector)
            scores = _fit_and_score(detector, X_fit, y_fit, X_eval, record)
            record.update(score_metrics(task.y_eval, scores))
        except Exception as exc:  # a failing detector is a result, the benchmark goes on
            record.update(status="failed", error=_error_text(exc))
            scores = None
        if scores is not None:
            maps = _localise(detector, task, X_eval, record)
    record.update(peak_rss_mb=rss.peak_mb, peak_gpu_mb=gpu.peak_mb)
    # the metrics' own sorting of every pixel is kept out of the detector's peak memory
    record.update(map_metrics(task.masks_eval, maps))
    records = [record] + _defect_class_rows(record, task, scores, maps)
    kept = None if maps is None or keep_maps is None else maps[np.asarray(keep_maps)]
    return records, kept


def _localise(detector, task, X_eval, record):
    """Return the test maps (None without), their time in ``record["map_seconds"]``.

    A failing ``anomaly_map`` leaves the image metrics, which are valid: its error is
    recorded and the map metrics stay empty.
    """
    try:
        with Stopwatch() as clock:
            maps = _anomaly_maps(detector, task, X_eval)
        if maps is not None:
            record["map_seconds"] = clock.seconds
        return maps
    except Exception as exc:
        record["error"] = "anomaly_map: " + _error_text(exc)
        return None


def _anomaly_maps(detector, task, X_eval):
    """Maps of the test images when the task has masks and the detector maps, else None."""
    if task.masks_eval is None or not hasattr(detector, "anomaly_map"):
        return None
    maps = np.asarray(detector.anomaly_map(X_eval), dtype=np.float64)
    if maps.shape != task.masks_eval.shape:
        raise ValueError(f"anomaly_map returned maps of shape {maps.shape} for masks of "
                         f"shape {task.masks_eval.shape}")
    return maps


def map_metrics(masks, maps):
    """Return ``pixel_auroc`` and ``aupro`` (NaN without maps or without defect pixels)."""
    if maps is None or not masks.any():
        return {"pixel_auroc": np.nan, "aupro": np.nan}
    return {"pixel_auroc": pixel_auroc(masks, maps), "aupro": aupro(masks, maps)}


def _defect_class_rows(record, task, scores, maps):
    """One row per defect class: its test images against the normal ones."""
    if task.groups_eval is None or scores is None:
        return []
    normal = task.y_eval == 0
    rows = []
    for group in pd.unique(task.groups_eval[~normal]):
        rows_of = normal | (task.groups_eval == group)
        row = {**record, **dict.fromkeys(TIME_COLUMNS, np.nan)}
        row.update(subset=f"{task.subset}/{group}", defect_class=str(group),
                   n_test=int(rows_of.sum()), n_anomalies=int((~normal & rows_of).sum()))
        row.update(score_metrics(task.y_eval[rows_of], scores[rows_of]))
        row.update(map_metrics(task.masks_eval[rows_of],
                               None if maps is None else maps[rows_of]))
        rows.append(row)
    return rows


def warm_up(names, task, context, n_samples=32):
    """Build every detector, and fit and score those that allow it on a few samples, unmeasured.

    Imports and lazy initialisation then happen here, not in the first measured run.
    Errors are ignored: the measured run will meet them again and record them.
    With training labels, the few samples include some labelled anomalies.
    """
    rows = _warm_up_rows(task.y_fit, len(task.X_fit), n_samples)
    for name in names:
        spec = detectors_module.REGISTRY[name]
        X_fit = model_input(task.X_fit[rows], spec.flat_input)
        X_eval = model_input(task.X_eval[:n_samples], spec.flat_input)
        ctx = replace(context, n_features=int(np.prod(X_fit.shape[1:])), random_state=0,
                      image_side=_image_side(task.X_fit))
        try:
            y_fit = fit_labels(spec, task)
            detector = spec.build(ctx)
            if spec.warm_up:
                _fit_and_score(detector, X_fit, None if y_fit is None else y_fit[rows],
                               X_eval, {})
        except Exception:
            pass


def _warm_up_rows(y_fit, n_fit, n_samples):
    """Return the indices of at most ``n_samples`` training rows, a quarter of them (at least
    two) labelled anomalies when there are labels."""
    if y_fit is None or not y_fit.any():
        return np.arange(min(n_samples, n_fit))
    anomalies = np.flatnonzero(y_fit == 1)[:max(2, n_samples // 4)]
    normals = np.flatnonzero(y_fit == 0)[:n_samples - len(anomalies)]
    return np.sort(np.concatenate([anomalies, normals]))
