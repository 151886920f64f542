"""Tests of the localisation metrics (skmcad.metrics) against their definitions."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import f1_score

from skmcad.metrics import aupro, pixel_auroc, pixel_threshold, pro_curve


def _naive_aupro(masks, maps, max_fpr):
    """AUPRO straight from MVTec AD's definition, one threshold at a time."""
    regions = []
    for image, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(image, labelled == k) for k in range(1, n + 1)]
    free = ~masks
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:  # from the highest threshold down
        predicted = maps >= t
        fpr = (predicted & free).sum() / free.sum()
        pro = np.mean([predicted[image][region].mean() for image, region in regions])
        points.append((fpr, pro))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:  # cut the last trapezoid at max_fpr
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def _random_case(seed, quantise=None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 12, 12), dtype=bool)
    for image in range(3):  # the 4th image is defect-free
        for _ in range(rng.integers(1, 3)):
            y, x = rng.integers(0, 10, 2)
            masks[image, y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = True
    maps = rng.random(masks.shape) + 0.7 * masks
    if quantise:  # ties between pixels, as maps of upsampled patches have
        maps = np.round(maps * quantise) / quantise
    return masks, maps


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantise", [None, 5])
@pytest.mark.parametrize("max_fpr", [0.3, 0.05, 1.0])
def test_aupro_equals_the_naive_definition(seed, quantise, max_fpr):
    masks, maps = _random_case(seed, quantise)
    assert aupro(masks, maps, max_fpr) == pytest.approx(_naive_aupro(masks, maps, max_fpr),
                                                        abs=1e-12)


def test_aupro_known_values():
    masks, maps = _random_case(0)
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0)
    # inverted map: every defect pixel below every free one, nothing found before FPR 1
    assert aupro(masks, -masks.astype(float)) == pytest.approx(0.0)
    # a constant map is one threshold: the straight line from (0, 0) to (1, 1)
    assert aupro(masks, np.zeros(masks.shape)) == pytest.approx(0.15)
    assert aupro(masks, np.zeros(masks.shape), max_fpr=1.0) == pytest.approx(0.5)


def test_aupro_weighs_regions_not_pixels():
    """A found small region counts as much as a missed large one: PRO 0.5 at FPR 0."""
    masks = np.zeros((1, 20, 20), dtype=bool)
    masks[0, :10, :10] = True  # 100 pixels, missed
    masks[0, 15, 15] = True  # 1 pixel, found
    maps = np.zeros(masks.shape)
    maps[0, 15, 15] = 1.0
    fpr, pro = pro_curve(masks, maps)
    assert (fpr[1], pro[1]) == (0.0, 0.5)
    # pixel AUROC barely sees the small region
    assert pixel_auroc(masks, maps) < 0.51
    # diagonal neighbours are one region (8-connectivity, as MVTec AD's evaluation)
    masks[0, 16, 16] = True
    maps[0, 16, 16] = 1.0
    assert pro_curve(masks, maps)[1][1] == 0.5


def test_pixel_auroc_and_errors():
    masks, maps = _random_case(1)
    assert pixel_auroc(masks, masks.astype(float)) == 1.0
    assert pixel_auroc(masks, -masks.astype(float)) == 0.0
    with pytest.raises(ValueError, match="same"):
        pixel_auroc(masks, maps[:2])
    with pytest.raises(ValueError, match="both"):
        pixel_auroc(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="defect region"):
        aupro(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="max_fpr"):
        aupro(masks, maps, max_fpr=0)
    with pytest.raises(ValueError, match="non-finite"):
        aupro(masks, np.full(maps.shape, np.nan))


def test_pixel_threshold_maximises_f1():
    masks, maps = _random_case(2)
    threshold = pixel_threshold(maps, masks)
    best = f1_score(masks.ravel(), (maps >= threshold).ravel())
    for t in np.unique(maps):  # no other threshold does better
        assert f1_score(masks.ravel(), (maps >= t).ravel()) <= best + 1e-12


def test_pixel_threshold_quantile_of_normal_pixels():
    rng = np.random.default_rng(0)
    normal = rng.random((10, 20, 20))
    threshold = pixel_threshold(normal, contamination=0.05)
    assert (normal >= threshold).mean() == pytest.approx(0.05, abs=1e-3)
    # with masks, defect pixels are left out of the quantile
    masks = np.zeros(normal.shape, dtype=bool)
    masks[0] = True
    raised = normal + 100 * masks
    assert pixel_threshold(raised, masks, contamination=0.05) == pytest.approx(
        pixel_threshold(normal[1:], contamination=0.05))
    with pytest.raises(ValueError, match="masks .* or a contamination"):
        pixel_threshold(normal)
    with pytest.raises(ValueError, match="contamination"):
        pixel_threshold(normal, contamination=0.9)
