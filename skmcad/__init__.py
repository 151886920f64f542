"""skmcad: multi-scale contrasted memory anomaly detection for scikit-learn and PyOD."""

__version__ = "0.1.0"
__all__ = ["MCADDetector"]


def __getattr__(name):
    # torch and PyOD load on first use, so that ``python -m skmcad.benchmark --help`` and
    # the submodules that need neither start fast
    if name == "MCADDetector":
        from ._detector import MCADDetector

        return MCADDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
