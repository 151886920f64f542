"""skmcad: multi-scale contrasted memory anomaly detection for scikit-learn and PyOD."""

__version__ = "0.1.0"
