"""PaDiM: a Gaussian per position of frozen mid-level features."""

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ..nn.efficientnet import STAGE_CHANNELS
from .._detector import _resolve_device
from ..nn.pretrained_encoder import DEFAULT_INPUT_SIZE, frozen_stage_maps

from ._frozen_backbone import _load_backbone, _PatchMapDetector


class PaDiM(_PatchMapDetector):
    """A Gaussian per position over frozen mid-level features (PaDiM).

    Defard et al. 2021, "PaDiM: a patch distribution modeling framework for anomaly
    detection and localization". Each image is resized to ``input_size`` and run through
    the frozen EfficientNet-Lite (``backbone``) of :mod:`skmcad.nn.pretrained_encoder`; the
    maps of ``stages``
    (3 and 4 by default: 40 + 80 channels at 1/8 and 1/16 of ``input_size``) are upsampled
    (nearest) to the first one's grid and concatenated, and ``n_features`` channels drawn
    at random are kept, as in the paper, so each covariance stays small. At every grid position the
    training vectors get a mean and a covariance, regularised by ``regularization`` times
    the identity. A test position scores the Mahalanobis distance of its vector to its
    position's Gaussian.

    Maps are bilinearly upsampled and blurred by a Gaussian of sigma 4 px at the backbone
    input size, as :class:`PatchCore`'s; an image scores the maximum of its map at
    ``input_size``.

    Parameters
    ----------
    n_features : int, default=100
        Channels kept (the paper keeps 100 of ResNet-18's 448); all when more than there
        are.
    stages : tuple of int, default=(3, 4)
        Backbone stages whose maps make up a position's vector. The paper's first three
        ResNet layers correspond to stages 2-4; adding stage 2 (1/4 of ``input_size``)
        quadruples the grid: on Magnetic Tile at 128 px it scored 0.943 image / 0.796
        pixel AUROC against 0.950 / 0.816 without it, at a third of the speed.
    regularization : float, default=0.01
        Added to the diagonal of every covariance (the paper's 0.01): it keeps them
        invertible with fewer training images than features.
    backbone : {"efficientnet-lite0", "efficientnet-lite1"}, default="efficientnet-lite0"
        The ImageNet-pretrained backbone, as :class:`skmcad.MCADDetector`'s.
    input_size : int, default=96
        Side, in pixels, images are resized to (bilinear).
    batch_size : int, default=256
        Images per batch; memory stays bounded by it.
    contamination : float in (0, 0.5], default=0.1
        Expected proportion of anomalies in the training data; sets ``threshold_``.
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" takes CUDA when available, else the CPU.
    n_jobs : int or None, default=None
        CPU threads of torch in ``fit`` and scoring (None: 1, -1: every core), as
        :class:`skmcad.MCADDetector`'s.
    random_state : int, RandomState instance or None, default=None
        Seeds the channel subset.

    Attributes
    ----------
    channels_ : Tensor of shape (n_features,), int64
        Indices of the kept channels among the concatenated ones.
    mean_ : Tensor of shape (h * w, n_features)
        Mean vector of every position, row by row.
    precision_ : Tensor of shape (h * w, n_features, n_features)
        Inverse regularised covariance of every position.
    grid_ : tuple of int
        (h, w) of the position grid.
    layout_ : skmcad.inputs.InputLayout
    device_ : torch.device
    backbone_ : skmcad.nn.efficientnet.EfficientNetLite
        The frozen backbone, truncated after the last of ``stages``.
    n_features_in_ : int
        Values per image.
    decision_scores_ : ndarray of shape (n_samples,)
        Scores of the training images (the Gaussians were fitted on them).
    threshold_ : float
    labels_ : ndarray of shape (n_samples,)

    Notes
    -----
    Memory: ``h * w * n_features^2`` float32 values for the precisions (at 128 px, a 16 x 16
    grid and 100 features: 10 MB). The training images are read twice (statistics, then
    training scores) rather than held.

    Examples
    --------
    >>> import numpy as np
    >>> from skmcad.baselines import PaDiM
    >>> X = np.random.default_rng(0).random((8, 16, 16))
    >>> det = PaDiM(n_features=20, input_size=32, device="cpu", random_state=0).fit(X)
    >>> det.anomaly_map(X[:2]).shape
    (2, 16, 16)
    """

    _parameter_constraints = {
        **_PatchMapDetector._common_constraints,
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "stages": [tuple, list],
        "regularization": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, n_features=100, stages=(3, 4), regularization=0.01,
                 backbone="efficientnet-lite0", input_size=DEFAULT_INPUT_SIZE, batch_size=256,
                 contamination=0.1, device="auto", n_jobs=None, random_state=None):
        self.n_features = n_features
        self.stages = stages
        self.regularization = regularization
        self.backbone = backbone
        self.input_size = input_size
        self.batch_size = batch_size
        self.contamination = contamination
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X):
        stages = self._checked_stages()
        X = self._check_images(X, reset=True)
        if len(X) < 2:
            raise ValueError(f"PaDiM needs at least 2 training images; got {len(X)}.")
        self.device_ = _resolve_device(self.device)
        self.backbone_ = _load_backbone(self.backbone, max(stages), self.device_)
        n_channels = sum(STAGE_CHANNELS[s - 1] for s in stages)
        rng = check_random_state(self.random_state)
        kept = np.sort(rng.choice(n_channels, min(self.n_features, n_channels), replace=False))
        self.channels_ = torch.from_numpy(kept).to(self.device_)
        self._fit_gaussians(X)
        scores = torch.cat([self._batch_scores(x) for x in self._inputs(X)])
        return self._finish_fit(scores)

    def _fit_gaussians(self, X):
        """Mean and precision per position from sums over the training images (float64)."""
        total = outer = None
        for x in self._inputs(X):
            vectors, self.grid_ = self._position_vectors(x)
            vectors = vectors.double()  # (B, P, d)
            batch_total = vectors.sum(dim=0)
            batch_outer = torch.einsum("bpi,bpj->pij", vectors, vectors)
            total = batch_total if total is None else total + batch_total
            outer = batch_outer if outer is None else outer + batch_outer
        n = len(X)
        mean = total / n
        # unbiased covariance, as numpy.cov in the paper's code
        covariance = (outer - n * mean.unsqueeze(2) * mean.unsqueeze(1)) / (n - 1)
        identity = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=mean.device)
        self.mean_ = mean.float()
        self.precision_ = torch.linalg.inv(covariance + self.regularization * identity).float()

    def _position_vectors(self, x):
        """Kept channels at every grid position of backbone inputs: (B, h * w, d), (h, w)."""
        maps = [m.float() for m in frozen_stage_maps(self.backbone_, x, self._checked_stages())]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="nearest")
                for m in maps]
        stacked = torch.cat(maps, dim=1).index_select(1, self.channels_)  # (B, d, h, w)
        return stacked.flatten(2).transpose(1, 2), tuple(size)

    def _distance_maps(self, x):
        """Mahalanobis distance of every position of backbone inputs: (B, h, w)."""
        vectors, grid = self._position_vectors(x)
        centred = vectors - self.mean_  # (B, P, d)
        squared = torch.einsum("bpi,pij,bpj->bp", centred, self.precision_, centred)
        return squared.clamp_min(0).sqrt().view(len(x), *grid)

    def _score_maps(self, x):
        """Smoothed maps at the backbone input size: (B, input_size, input_size)."""
        return self._smoothed(self._distance_maps(x), (self.input_size, self.input_size))

    def _batch_scores(self, x):
        """Maximum of each image's smoothed Mahalanobis map at ``input_size``: (B,)."""
        return self._score_maps(x).amax(dim=(1, 2))
