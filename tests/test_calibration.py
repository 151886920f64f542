"""``predict`` flags about ``contamination`` of fresh normal data, with the default
configurations: the threshold set on the training scores holds on data the detector has not
seen."""

import numpy as np
import pytest

from skmcad import MCADDetector

CONTAMINATION = 0.1


def assert_calibrated(false_positive_rate):
    # within a factor 1.5 of contamination; the test sets are large enough (>= 1,000 samples)
    # that sampling noise alone stays well inside it (standard error under 0.01)
    assert CONTAMINATION / 1.5 <= false_positive_rate <= CONTAMINATION * 1.5


@pytest.mark.slow
def test_images_with_the_default_detector(digits):
    images, _ = digits
    order = np.random.default_rng(0).permutation(len(images))
    train, fresh = images[order[:300]], images[order[300:]]  # every digit is normal here
    det = MCADDetector(contamination=CONTAMINATION, random_state=0).fit(train)
    assert det.config_["backbone"] == "efficientnet-lite0"
    assert_calibrated(det.predict(fresh).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_tables_with_the_default_detector(seed):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(6, 6))
    rows = np.concatenate([rng.normal(size=(1250, 6)) @ mixing,  # two correlated clusters
                           rng.normal(size=(1250, 6)) @ mixing + 3.0])
    rows = rng.permutation(rows)
    det = MCADDetector(contamination=CONTAMINATION, random_state=seed).fit(rows[:500])
    assert_calibrated(det.predict(rows[500:]).mean())
