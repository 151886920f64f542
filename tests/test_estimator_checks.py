"""scikit-learn's own estimator checks on a small, fast configuration."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmcad import MCADDetector

from conftest import TINY

SIGN_CONVENTION = (
    "scikit-learn outlier detectors label outliers -1 and inliers +1; PyOD's contract, "
    "which MCADDetector follows, labels anomalies 1 and normal samples 0"
)
EXPECTED_FAILURES = {
    "check_outliers_train": SIGN_CONVENTION,
    "check_outliers_fit_predict": SIGN_CONVENTION,
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks([MCADDetector(**TINY)], expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
