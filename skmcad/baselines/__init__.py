"""Image anomaly baselines on MCAD's frozen ImageNet backbone: DN2, PatchCore and PaDiM.

The detectors read images exactly as :class:`skmcad.MCADDetector` does (every layout of
:mod:`skmcad.inputs`, uint8 scaled by 1/255, float pixels taken as in [0, 1], grey repeated
to RGB, a 4th channel dropped), resize them to ``input_size`` and run the same frozen
EfficientNet-Lite (``backbone``, Lite0 by default; BatchNorm folded, channels-last, bfloat16
autocast where the device computes it natively, chunks of
:data:`skmcad.nn.pretrained_encoder.CPU_CHUNK` images on CPU). They
differ from MCAD only in what is done with the frozen features, so a comparison with them
measures what MCAD's training adds:

- :class:`FeatureKNN` (DN2, Bergman et al. 2020, "Deep nearest neighbor anomaly detection"):
  distance of an image's pooled deep feature to its k-th nearest training feature.
- :class:`PatchCore` (Roth et al. 2022, "Towards total recall in industrial anomaly
  detection"): a coreset memory bank of mid-level patch features; an image scores the
  largest distance of its patches to the bank, and has a per-pixel anomaly map.
- :class:`PaDiM` (Defard et al. 2021, "PaDiM: a patch distribution modeling framework for
  anomaly detection and localization"): a Gaussian per position of mid-level features; a
  position scores its Mahalanobis distance, an image the maximum of its smoothed map.
"""

from ..nn.coreset import greedy_coreset
from ._frozen_backbone import backbone_input
from .feature_knn import FeatureKNN
from .padim import PaDiM
from .patchcore import PatchCore

__all__ = ["FeatureKNN", "PatchCore", "PaDiM", "greedy_coreset", "backbone_input"]
