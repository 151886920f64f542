"""skmcad: multi-scale contrasted memory anomaly detection for scikit-learn and PyOD."""

from .estimator import MCADDetector

__version__ = "0.1.0"
__all__ = ["MCADDetector"]
