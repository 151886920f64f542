"""Running detectors on tasks and recording metrics, time and memory for each run."""

from dataclasses import replace

import numpy as np
from pyod.utils.utility import precision_n_scores
from sklearn.metrics import average_precision_score, roc_auc_score

from . import detectors as detectors_module
from .measure import PeakGPUMemory, PeakRSS, Stopwatch

MAX_ERROR_CHARS = 500

# Column order of results.csv.
# anomaly_ratio, n_labelled and labelled_classes describe the unbalanced protocol's training
# data (empty, 0 and empty in the one-class protocols).
COLUMNS = (
    "dataset", "anomaly_ratio", "subset", "seed", "detector", "status", "error", "auroc",
    "aucpr", "precision_at_n", "fit_seconds", "fit_cpu_seconds", "score_seconds",
    "throughput", "peak_rss_mb", "peak_gpu_mb", "n_fit", "n_labelled", "n_test",
    "n_anomalies", "labelled_classes", "params",
)


def model_input(X, flat_input):
    """Return ``X`` as rows ``(n, d)`` when ``flat_input``, else unchanged (a view, no copy)."""
    return X.reshape(len(X), -1) if flat_input and X.ndim > 2 else X


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
    record = dict.fromkeys(COLUMNS, np.nan)
    record.update(
        dataset=dataset, subset=task.subset, seed=task.seed, detector=name, status="ok",
        error="", params="", n_fit=len(task.X_fit), n_test=len(task.X_eval),
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
    context = replace(context, n_features=n_features, random_state=task.seed)
    with PeakRSS() as rss, PeakGPUMemory() as gpu:
        try:
            y_fit = fit_labels(spec, task)
            detector = spec.build(context)
            record["params"] = detectors_module.describe(detector)
            scores = _fit_and_score(detector, X_fit, y_fit, X_eval, record)
            record.update(score_metrics(task.y_eval, scores))
        except Exception as exc:  # a failing detector is a result, the benchmark goes on
            record.update(status="failed", error=_error_text(exc))
    record.update(peak_rss_mb=rss.peak_mb, peak_gpu_mb=gpu.peak_mb)
    return record


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
        ctx = replace(context, n_features=int(np.prod(X_fit.shape[1:])), random_state=0)
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
