"""Benchmark of MCADDetector against PyOD baselines.

Run it as ``python -m skmcad.benchmark`` or ``skmcad-benchmark``; ``--help`` lists the
protocols and options. The modules hold: ``protocols`` (data and splits), ``detectors`` (the
detector registry), ``measure`` (time and memory), ``runner`` (one fit-and-score run and its
metrics), ``report`` (tables, files, chart) and ``cli`` (the command line).
"""

from .cli import main

__all__ = ["main"]
