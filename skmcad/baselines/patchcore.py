"""PatchCore: a coreset memory bank of frozen mid-level patch features."""

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._detector import _resolve_device
from ..nn.coreset import greedy_coreset
from ..nn.positions import positions
from ..nn.pretrained_encoder import DEFAULT_INPUT_SIZE, frozen_stage_maps, local_average
from ..threads import with_torch_threads

from ._frozen_backbone import _load_backbone, _PatchMapDetector, _row_chunks

class PatchCore(_PatchMapDetector):
    """Memory bank of frozen mid-level patch features (PatchCore).

    Each image is resized to ``input_size`` and run through the frozen EfficientNet-Lite
    (``backbone``) of :mod:`skmcad.nn.pretrained_encoder`; the maps of ``stages`` (4 and 5 by
    default: 80 + 112 channels at 1/16 of ``input_size``) are concatenated (later maps resized
    to the first's shape if they differ) and each position is averaged over its 3x3
    neighbourhood (local aggregation; borders average the positions inside the map). Every
    training patch vector goes into one bank, subsampled to ``coreset_ratio`` of it. A test
    patch scores its Euclidean distance to the nearest bank entry; an image scores its
    largest patch score.

    Parameters
    ----------
    coreset_ratio : float in (0, 1], default=0.1
        Fraction of the training patches kept in the bank.
    coreset : {"random", "greedy"}, default="random"
        "greedy" is PatchCore's approximate greedy k-center coreset
        (:func:`greedy_coreset`, on a random projection to 128 dimensions): it covers the
        patches better than "random" for the same size, but costs one pass over all
        training patches per bank entry, one after the other. On 5,000 CIFAR-10 images at
        96 px (180,000 patches, 18,000 kept, 1 CPU thread) it takes about 220 s on its own,
        a fit of 260 s against 45-60 s with "random", for about +0.04 AUROC (classes 0 and
        3: 0.805 and 0.564 against 0.761 and 0.524). Hence the default: "greedy" where
        fit time does not matter, or on a GPU.
    stages : tuple of int, default=(4, 5)
        Backbone stages whose maps make up a patch vector.
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
        Seeds the coreset.

    Attributes
    ----------
    memory_bank_ : Tensor of shape (n_bank, C)
        The kept patch vectors, on ``device_``.
    layout_ : skmcad.inputs.InputLayout
    device_ : torch.device
    backbone_ : skmcad.nn.efficientnet.EfficientNetLite
        The frozen backbone, truncated after the last of ``stages``.
    n_features_in_ : int
        Values per image.
    decision_scores_ : ndarray of shape (n_samples,)
        Training scores against the bank; the bank holds some of each image's own
        patches, so these are lower than scores of unseen normal images.
    threshold_ : float
    labels_ : ndarray of shape (n_samples,)

    Notes
    -----
    The training patches are held in memory together until the coreset is drawn:
    n_samples x (input_size / 16)^2 x 192 float32 values (140 MB for 5,000 images at 96 px).

    Examples
    --------
    >>> import numpy as np
    >>> from skmcad.baselines import PatchCore
    >>> X = np.random.default_rng(0).random((8, 16, 16))
    >>> det = PatchCore(input_size=32, device="cpu", random_state=0).fit(X)
    >>> det.anomaly_map(X[:2]).shape
    (2, 16, 16)
    """

    _parameter_constraints = {
        **_PatchMapDetector._common_constraints,
        "coreset_ratio": [Interval(Real, 0, 1, closed="right")],
        "coreset": [StrOptions({"greedy", "random"})],
        "stages": [tuple, list],
    }

    def __init__(self, coreset_ratio=0.1, coreset="random", stages=(4, 5),
                 backbone="efficientnet-lite0", input_size=DEFAULT_INPUT_SIZE, batch_size=256,
                 contamination=0.1, device="auto", n_jobs=None, random_state=None):
        self.coreset_ratio = coreset_ratio
        self.coreset = coreset
        self.stages = stages
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
        self.device_ = _resolve_device(self.device)
        self.backbone_ = _load_backbone(self.backbone, max(stages), self.device_)
        # (n * h * w, C): every training patch vector, image by image
        patches = torch.cat([positions(self._patch_maps(x)) for x in self._inputs(X)])
        self.memory_bank_ = patches[self._coreset_indices(patches)].contiguous()
        distances = self._nearest_bank_distance(patches).view(len(X), -1)
        return self._finish_fit(distances.amax(dim=1))

    def _coreset_indices(self, patches):
        n_select = max(1, int(round(self.coreset_ratio * len(patches))))
        if n_select >= len(patches):
            return torch.arange(len(patches), device=patches.device)
        if self.coreset == "greedy":
            return greedy_coreset(patches, n_select, self.random_state)
        rng = check_random_state(self.random_state)
        chosen = rng.choice(len(patches), n_select, replace=False)
        return torch.from_numpy(chosen).to(patches.device)

    def _patch_maps(self, x):
        """Locally aggregated patch vectors of backbone inputs: (B, C, h, w)."""
        maps = [m.float() for m in frozen_stage_maps(self.backbone_, x, self._checked_stages())]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else
                F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps]
        return local_average(torch.cat(maps, dim=1), 3)

    def _nearest_bank_distance(self, patches):
        out = torch.empty(len(patches), device=patches.device)
        for start, stop in _row_chunks(len(patches), len(self.memory_bank_)):
            out[start:stop] = torch.cdist(patches[start:stop], self.memory_bank_).amin(dim=1)
        return out

    def _distance_maps(self, x):
        """Per-patch distance to the bank of backbone inputs: (B, h, w)."""
        patch_maps = self._patch_maps(x)
        n, _, height, width = patch_maps.shape
        return self._nearest_bank_distance(positions(patch_maps)).view(n, height, width)

    @with_torch_threads
    def patch_distances(self, X):
        """Distance of every patch to its nearest bank entry.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples, h, w), float64
            h = w = ceil(input_size / 16) for the default stages.
        """
        check_is_fitted(self)
        X = self._check_images(X, reset=False)
        return torch.cat([self._distance_maps(x).cpu() for x in self._inputs(X)]).double().numpy()

    def _batch_scores(self, x):
        """Largest patch distance to the memory bank of each image: (B,)."""
        return self._distance_maps(x).amax(dim=(1, 2))
