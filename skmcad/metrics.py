"""Metrics of anomaly maps (localisation) and a threshold that turns maps into masks.

- :func:`pixel_auroc`: ROC AUC over every pixel of every image, defect pixels positive.
- :func:`aupro`: area under the per-region-overlap (PRO) curve up to a false-positive rate,
  as MVTec AD's evaluation defines it (Bergmann et al., "The MVTec anomaly detection
  dataset", IJCV 2021). Unlike pixel AUROC, every connected defect region weighs the same
  whatever its area, so small defects count as much as large ones.
- :func:`pixel_threshold`: the map value above which a pixel is called a defect.

Examples
--------
>>> import numpy as np
>>> masks = np.zeros((2, 8, 8), dtype=bool); masks[0, 2:4, 2:4] = True
>>> maps = masks.astype(float)
>>> pixel_auroc(masks, maps), aupro(masks, maps)
(1.0, 1.0)
"""

import numbers

import numpy as np
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score

__all__ = ["pixel_auroc", "aupro", "pro_curve", "pixel_threshold"]

# MVTec AD's evaluation labels regions with 8-connectivity (a 3x3 structuring element).
REGION_STRUCTURE = np.ones((3, 3), dtype=int)


def _check_maps(masks, maps):
    masks = np.asarray(masks)
    maps = np.asarray(maps, dtype=np.float64)
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(f"masks of shape {masks.shape} and maps of shape {maps.shape} must "
                         "be the same (n_images, H, W).")
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("masks must be boolean (or 0/1): True on defect pixels.")
    if not np.isfinite(maps).all():
        raise ValueError("maps hold non-finite values.")
    return masks.astype(bool), maps


def pixel_auroc(masks, maps):
    """ROC AUC of anomaly maps over all pixels of all images, defect pixels positive.

    Parameters
    ----------
    masks : array-like of shape (n_images, H, W), bool
        True on defect pixels.
    maps : array-like of shape (n_images, H, W)
        Anomaly maps, higher = more anomalous.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Shapes that differ, non-finite maps, or masks with no defect pixel or only defect
        pixels (the AUROC is then undefined).

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.array([[[True, False], [False, False]]])
    >>> round(pixel_auroc(masks, np.array([[[0.9, 0.1], [0.5, 0.95]]])), 4)  # 2 of 3 pairs
    0.6667
    """
    masks, maps = _check_maps(masks, maps)
    if masks.all() or not masks.any():
        raise ValueError("pixel AUROC needs both defect and defect-free pixels in masks.")
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def _region_weights(masks):
    """Per pixel: 1 / area of its connected defect region (0 off regions); region count."""
    weights = np.zeros(masks.shape)
    n_regions = 0
    for image, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=REGION_STRUCTURE)
        if n:
            areas = np.bincount(labelled.ravel())  # areas[0]: the background, unused
            inside = labelled > 0
            weights[image][inside] = 1.0 / areas[labelled[inside]]
        n_regions += n
    return weights, n_regions


def pro_curve(masks, maps):
    """False-positive rate and per-region overlap of every threshold of the maps.

    At threshold ``t`` a pixel is predicted defective when its map value is >= ``t``. The
    false-positive rate is the fraction of defect-free pixels (of all images) so predicted;
    the PRO is the mean, over every connected defect region of every image (8-connected),
    of the fraction of the region's pixels so predicted. Thresholds run over every distinct
    map value, from the highest down, as in MVTec AD's evaluation code.

    Parameters
    ----------
    masks : array-like of shape (n_images, H, W), bool
    maps : array-like of shape (n_images, H, W)

    Returns
    -------
    fpr : ndarray of shape (n_thresholds + 2,)
        Non-decreasing, from 0 to 1.
    pro : ndarray of shape (n_thresholds + 2,)
        Non-decreasing, from 0 to 1.

    Raises
    ------
    ValueError
        Masks without a defect region or without a defect-free pixel.
    """
    masks, maps = _check_maps(masks, maps)
    weights, n_regions = _region_weights(masks)
    n_free = int((~masks).sum())
    if n_regions == 0 or n_free == 0:
        raise ValueError("AUPRO needs at least one defect region and one defect-free pixel.")
    order = np.argsort(maps.ravel(), kind="stable")[::-1]  # highest value first
    scores = maps.ravel()[order]
    fpr = np.cumsum((~masks).ravel()[order], dtype=np.float64) / n_free
    pro = np.cumsum(weights.ravel()[order]) / n_regions
    # equal values form one threshold: keep the point after the last of them
    last = np.append(scores[1:] != scores[:-1], True)
    fpr, pro = np.minimum(fpr[last], 1.0), np.minimum(pro[last], 1.0)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], pro, [1.0]])


def _area_up_to(x, y, x_max):
    """Trapezoidal area under a curve with non-decreasing ``x``, from x[0] to ``x_max``.

    The curve is cut at ``x_max``; where ``x`` jumps over it, ``y`` is interpolated
    linearly. Vertical steps (equal ``x``) add no area.
    """
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    if xs[-1] < x_max:
        after = np.argmax(~inside)  # first point past x_max
        y_cut = np.interp(x_max, [x[after - 1], x[after]], [y[after - 1], y[after]])
        xs, ys = np.append(xs, x_max), np.append(ys, y_cut)
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))


def aupro(masks, maps, max_fpr=0.3):
    """Normalised area under the PRO curve up to a false-positive rate (MVTec AD's AUPRO).

    The PRO-vs-FPR curve of :func:`pro_curve` is integrated (trapezoids) from FPR 0 to
    ``max_fpr``, then divided by ``max_fpr``: 1 for maps that put every defect pixel above
    every defect-free one, about ``max_fpr / 2`` for maps of random values.

    Parameters
    ----------
    masks : array-like of shape (n_images, H, W), bool
        True on defect pixels; images without a defect contribute false positives only.
    maps : array-like of shape (n_images, H, W)
        Anomaly maps, higher = more anomalous.
    max_fpr : float in (0, 1], default=0.3
        MVTec AD reports 0.3.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        ``max_fpr`` outside (0, 1], or masks without a defect region or a defect-free pixel.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((1, 4, 4), dtype=bool); masks[0, :2, :2] = True
    >>> round(aupro(masks, np.zeros((1, 4, 4))), 3)  # one threshold: everything flagged
    0.15
    """
    if isinstance(max_fpr, bool) or not isinstance(max_fpr, numbers.Real) or not (
            0 < max_fpr <= 1):
        raise ValueError(f"max_fpr must be in (0, 1]; got {max_fpr!r}.")
    fpr, pro = pro_curve(masks, maps)
    return _area_up_to(fpr, pro, max_fpr) / max_fpr


def pixel_threshold(maps, masks=None, contamination=None):
    """Map value above which pixels are called defective.

    Two ways, for the data one has:

    - with ``masks`` of a validation split (and no ``contamination``): the threshold that
      maximises the pixel F1 score on it;
    - with ``contamination``: the ``1 - contamination`` quantile of the values of normal
      pixels, so about that fraction of normal pixels is flagged. The maps are then of
      defect-free images, or ``masks`` says which pixels are normal.

    Parameters
    ----------
    maps : array-like of shape (n_images, H, W)
        Anomaly maps of a fitted detector (its ``anomaly_map`` on validation images).
        Maps of one fitted detector share one scale, so one threshold serves every image.
    masks : array-like of shape (n_images, H, W), bool, default=None
        True on defect pixels.
    contamination : float in (0, 0.5], default=None
        Fraction of normal pixels allowed above the threshold.

    Returns
    -------
    threshold : float
        Pixels with ``map >= threshold`` are defective.

    Raises
    ------
    ValueError
        Neither ``masks`` nor ``contamination``, masks without a defect pixel when F1 is
        maximised, or ``contamination`` outside (0, 0.5].

    Examples
    --------
    Threshold from a validation split with masks, then masks of new images:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> masks = np.zeros((4, 16, 16), dtype=bool); masks[:2, 4:8, 4:8] = True
    >>> maps = rng.random((4, 16, 16)) + 2.0 * masks  # a detector's anomaly_map(X_val)
    >>> t = pixel_threshold(maps, masks)
    >>> bool(((maps >= t) == masks).all())
    True

    Threshold from defect-free images only, flagging 1 % of their pixels:

    >>> t = pixel_threshold(rng.random((4, 16, 16)), contamination=0.01)
    >>> predicted = maps >= t  # boolean masks of the images behind ``maps``
    """
    maps = np.asarray(maps, dtype=np.float64)
    if contamination is not None:
        return _quantile_threshold(maps, masks, contamination)
    if masks is None:
        raise ValueError("pixel_threshold needs masks (F1 on a validation split) or a "
                         "contamination (quantile of normal pixels).")
    masks, maps = _check_maps(masks, maps)
    if not masks.any():
        raise ValueError("masks hold no defect pixel: give contamination instead.")
    precision, recall, thresholds = precision_recall_curve(masks.ravel(), maps.ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(float).tiny)
    return float(thresholds[np.argmax(f1[:-1])])  # the last point has no threshold


def _quantile_threshold(maps, masks, contamination):
    if isinstance(contamination, bool) or not isinstance(contamination, numbers.Real) or not (
            0 < contamination <= 0.5):
        raise ValueError(f"contamination must be in (0, 0.5]; got {contamination!r}.")
    if masks is not None:
        masks, maps = _check_maps(masks, maps)
        maps = maps[~masks]
    if maps.size == 0 or not np.isfinite(maps).all():
        raise ValueError("no finite normal pixel values to take a quantile of.")
    # "higher": the threshold is a value of the maps, and at most the fraction is above it
    return float(np.quantile(maps, 1.0 - contamination, method="higher"))
