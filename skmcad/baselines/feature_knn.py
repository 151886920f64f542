"""DN2: the k-th nearest training feature of the pooled frozen backbone features."""

from numbers import Integral

import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._detector import _resolve_device
from ..nn.pretrained_encoder import DEFAULT_INPUT_SIZE, frozen_stage_maps
from ..threads import with_torch_threads

from ._frozen_backbone import _FrozenBackboneDetector, _load_backbone, kth_neighbour_distance


class FeatureKNN(_FrozenBackboneDetector):
    """k-nearest-neighbour distance on frozen ImageNet features (DN2).

    Each image is resized to ``input_size``, run through the frozen EfficientNet-Lite
    (``backbone``) of :mod:`skmcad.nn.pretrained_encoder` up to ``stage``, and that stage's map
    is globally average-pooled and L2-normalised. The score of an image is the Euclidean distance of
    its feature to its ``n_neighbors``-th nearest training feature.

    Parameters
    ----------
    n_neighbors : int, default=5
        k of the k-th nearest training feature.
    stage : int in 1..7, default=7
        Backbone stage whose map is pooled (7: 320 channels at 1/32 of ``input_size``).
    backbone : {"efficientnet-lite0", "efficientnet-lite1"}, default="efficientnet-lite0"
        The ImageNet-pretrained backbone, as :class:`skmcad.MCADDetector`'s.
    input_size : int, default=96
        Side, in pixels, images are resized to (bilinear).
    batch_size : int, default=256
        Images per scoring batch; memory stays bounded by it.
    contamination : float in (0, 0.5], default=0.1
        Expected proportion of anomalies in the training data; sets ``threshold_``.
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" takes CUDA when available, else the CPU.
    n_jobs : int or None, default=None
        CPU threads of torch in ``fit`` and scoring (None: 1, -1: every core), as
        :class:`skmcad.MCADDetector`'s.
    random_state : int, RandomState instance or None, default=None
        Unused (the detector is deterministic); kept for the interface of the baselines.

    Attributes
    ----------
    features_ : Tensor of shape (n_samples, C)
        L2-normalised features of the training images, on ``device_``.
    layout_ : skmcad.inputs.InputLayout
    device_ : torch.device
    backbone_ : skmcad.nn.efficientnet.EfficientNetLite
        The frozen backbone, truncated after ``stage``.
    n_features_in_ : int
        Values per image.
    decision_scores_ : ndarray of shape (n_samples,)
        Training scores, each image excluded from its own neighbours.
    threshold_ : float
    labels_ : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmcad.baselines import FeatureKNN
    >>> X = np.random.default_rng(0).random((12, 16, 16))
    >>> det = FeatureKNN(n_neighbors=3, input_size=32, device="cpu").fit(X)
    >>> det.decision_function(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **_FrozenBackboneDetector._common_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "stage": [Interval(Integral, 1, 7, closed="both")],
    }

    def __init__(self, n_neighbors=5, stage=7, backbone="efficientnet-lite0",
                 input_size=DEFAULT_INPUT_SIZE, batch_size=256, contamination=0.1,
                 device="auto", n_jobs=None, random_state=None):
        self.n_neighbors = n_neighbors
        self.stage = stage
        self.backbone = backbone
        self.input_size = input_size
        self.batch_size = batch_size
        self.contamination = contamination
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X):
        X = self._check_images(X, reset=True)
        if len(X) <= self.n_neighbors:
            raise ValueError(f"FeatureKNN with n_neighbors={self.n_neighbors} needs more than "
                             f"{self.n_neighbors} training images; got {len(X)}.")
        self.device_ = _resolve_device(self.device)
        self.backbone_ = _load_backbone(self.backbone, self.stage, self.device_)
        self.features_ = torch.cat([self._pooled(x) for x in self._inputs(X)])
        # the nearest training feature of a training image is itself: skip it
        return self._finish_fit(
            kth_neighbour_distance(self.features_, self.features_, self.n_neighbors + 1))

    def _pooled(self, x):
        feature_map = frozen_stage_maps(self.backbone_, x, [self.stage])[0].float()
        return F.normalize(feature_map.mean(dim=(2, 3)), dim=1)  # (B, C)

    @with_torch_threads
    def features(self, X):
        """L2-normalised pooled features of images, as the detector compares them.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples, C), float32
        """
        check_is_fitted(self)
        X = self._check_images(X, reset=False)
        return torch.cat([self._pooled(x).cpu() for x in self._inputs(X)]).numpy()

    def _batch_scores(self, x):
        """Distance to the ``n_neighbors``-th nearest training feature: (B,)."""
        return kth_neighbour_distance(self._pooled(x), self.features_, self.n_neighbors)
