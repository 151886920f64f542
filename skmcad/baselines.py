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

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from pyod.models.base import BaseDetector
from sklearn.base import _fit_context
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .nn.efficientnet import (BACKBONE_VARIANTS, INPUT_MEAN, INPUT_STD, STAGE_CHANNELS, fuse_bn,
                              load_pretrained)
from ._detector import _resolve_device
from .inputs import infer_layout, iter_batches
from .nn.positions import positions
from .nn.pretrained_encoder import DEFAULT_INPUT_SIZE, frozen_stage_maps, local_average
from .threads import with_torch_threads

__all__ = ["FeatureKNN", "PatchCore", "PaDiM", "greedy_coreset", "backbone_input"]

PROJECTION_DIM = 128  # PatchCore's random projection for the greedy coreset
BLUR_SIGMA = 4.0  # px at the backbone input size, as in PatchCore
MAX_DISTANCES = 2 ** 24  # elements of one chunk of a distance matrix (64 MiB in float32)


# -- shared by the detectors ---------------------------------------------------------------


def backbone_input(batch, input_size, device):
    """Turn a batch of pixels into the frozen backbone's input.

    Parameters
    ----------
    batch : ndarray of shape (B, C, H, W), float32
        Pixels in [0, 1], C in {1, 3, 4}, as :meth:`skmcad.inputs.InputLayout.to_batch`
        returns them.
    input_size : int
        Side the images are resized to (bilinear).
    device : torch.device

    Returns
    -------
    Tensor of shape (B, 3, input_size, input_size), channels-last
        RGB normalised as the weights expect (pixels mapped to [-1, 1]).
    """
    x = torch.from_numpy(batch).to(device)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    if x.shape[-2:] != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear",
                          align_corners=False)
    mean = torch.tensor(INPUT_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(INPUT_STD, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _load_backbone(name, last_stage, device):
    backbone = fuse_bn(load_pretrained(n_stages=last_stage, variant=BACKBONE_VARIANTS[name]))
    backbone.requires_grad_(False)
    return backbone.to(device, memory_format=torch.channels_last)


def _row_chunks(n_rows, n_columns):
    """Row ranges of a (n_rows, n_columns) distance matrix, each at most MAX_DISTANCES."""
    step = max(1, MAX_DISTANCES // max(n_columns, 1))
    return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def kth_neighbour_distance(queries, references, k):
    """Euclidean distance of each query to its ``k``-th nearest reference (1-based).

    Parameters
    ----------
    queries : Tensor of shape (m, d)
    references : Tensor of shape (n, d), n >= k
    k : int

    Returns
    -------
    Tensor of shape (m,)
    """
    out = torch.empty(len(queries), device=queries.device)
    for start, stop in _row_chunks(len(queries), len(references)):
        distances = torch.cdist(queries[start:stop], references)
        out[start:stop] = distances.topk(k, dim=1, largest=False).values[:, -1]
    return out


class _FrozenBackboneDetector(BaseDetector):
    """Input checks, device and batching shared by the frozen-backbone baselines."""

    _common_constraints = {
        "backbone": [StrOptions(set(BACKBONE_VARIANTS))],
        "input_size": [Interval(Integral, 8, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    @with_torch_threads
    def fit(self, X, y=None):
        """Fit the detector on normal images.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, C, H, W)
            C in {1, 3, 4}; uint8 pixels are scaled by 1/255, float pixels taken as in [0, 1].
        y : ignored

        Returns
        -------
        self
            A failed or interrupted fit leaves the estimator as it was.
        """
        snapshot = dict(self.__dict__)
        try:
            return self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    def _check_images(self, X, reset):
        """Validated images; at fit, learn the layout, else check it is the fit one."""
        name = type(self).__name__
        X = check_array(X, dtype="numeric", ensure_all_finite=False, allow_nd=True,
                        ensure_2d=False, ensure_min_samples=1)
        if X.ndim <= 2:
            raise ValueError(
                f"{name} is an image detector: X must be images of shape (n, H, W), "
                f"(n, H, W, C) or (n, C, H, W) with C in (1, 3, 4); got {X.ndim}-D "
                f"(tabular) input of shape {X.shape}.")
        if reset:
            self.layout_ = infer_layout(X)
            self.n_features_in_ = self.layout_.n_features
        elif X.shape[1:] != self.layout_.sample_shape:
            raise ValueError(f"X holds images of shape {X.shape[1:]}, but {name} was fitted "
                             f"on images of shape {self.layout_.sample_shape}.")
        return X

    def _inputs(self, X):
        """Backbone inputs of ``X``, ``batch_size`` images at a time."""
        for batch in iter_batches(X, self.layout_, self.batch_size):
            yield backbone_input(batch, self.input_size, self.device_)

    def _finish_fit(self, training_scores):
        self.decision_scores_ = training_scores.double().cpu().numpy()
        self._classes = 2  # PyOD's predict_proba reads it
        self._process_decision_scores()
        return self

    def _stream_scores(self, X, score_inputs):
        X = self._check_images(X, reset=False)
        scores = np.empty(len(X))
        start = 0
        for x in self._inputs(X):
            scores[start:start + len(x)] = score_inputs(x).double().cpu().numpy()
            start += len(x)
        return scores

    def _checked_stages(self):
        """The patch detectors' ``stages`` as a tuple, refused unless all lie in 1..7."""
        stages = tuple(int(s) for s in self.stages)
        if not stages or not all(1 <= s <= 7 for s in stages):
            raise ValueError(f"stages must be a non-empty tuple of backbone stages in 1..7; "
                             f"got {self.stages!r}.")
        return stages

    def _smoothed(self, distances, size):
        """Patch distances (B, h, w) upsampled to ``size`` = (H, W), then blurred by a
        Gaussian of sigma ``BLUR_SIGMA`` px at the backbone input size."""
        sigmas = [BLUR_SIGMA * side / self.input_size for side in size]
        upsampled = F.interpolate(distances.unsqueeze(1), size=size, mode="bilinear",
                                  align_corners=False).squeeze(1)
        return _gaussian_blur(upsampled, *sigmas)

    def _stream_maps(self, X):
        """Smoothed ``_distance_maps`` at the input images' resolution, batch by batch."""
        X = self._check_images(X, reset=False)
        size = tuple(self.layout_.image_size[1:])
        maps = np.empty((len(X), *size))
        start = 0
        for x in self._inputs(X):
            maps[start:start + len(x)] = self._smoothed(self._distance_maps(x), size).double().cpu()
            start += len(x)
        return maps


# -- DN2 -----------------------------------------------------------------------------------


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

    @with_torch_threads
    def decision_function(self, X):
        """Distance to the ``n_neighbors``-th nearest training feature, batch by batch.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Higher = more anomalous.
        """
        check_is_fitted(self)
        return self._stream_scores(X, lambda x: kth_neighbour_distance(
            self._pooled(x), self.features_, self.n_neighbors))


# -- PatchCore -----------------------------------------------------------------------------


def greedy_coreset(features, n_select, random_state=None, projection_dim=PROJECTION_DIM):
    """PatchCore's approximate greedy k-center coreset.

    Features are randomly projected to ``projection_dim`` dimensions (when they have more);
    from a random first point, the point farthest from the points chosen so far is added,
    ``n_select`` times.

    Parameters
    ----------
    features : Tensor of shape (n, d)
    n_select : int
        Points to choose, at most n.
    random_state : int, RandomState instance or None
        Seeds the projection and the first point.
    projection_dim : int, default=128

    Returns
    -------
    Tensor of shape (n_select,), int64
        Indices of the chosen rows, in the order chosen.
    """
    rng = check_random_state(random_state)
    generator = torch.Generator().manual_seed(int(rng.randint(2 ** 31)))
    points = features.float()
    if points.shape[1] > projection_dim:
        projection = torch.randn(points.shape[1], projection_dim, generator=generator)
        points = points @ (projection / projection_dim ** 0.5).to(points.device)
    squared_norms = (points * points).sum(dim=1)
    nearest = torch.full_like(squared_norms, float("inf"))  # squared distance to the coreset
    chosen = torch.empty(n_select, dtype=torch.long, device=points.device)
    index = torch.tensor(int(rng.randint(len(points))), device=points.device)
    for i in range(n_select):  # indices stay tensors: no device sync per step on GPU
        chosen[i] = index
        distances = torch.addmv(squared_norms + squared_norms[index], points, points[index],
                                alpha=-2.0)
        torch.minimum(nearest, distances, out=nearest)
        index = nearest.argmax()
    return chosen


def _gaussian_blur(maps, sigma_y, sigma_x):
    """Separable Gaussian blur (truncated at 4 sigma, edges replicated) of (B, H, W) maps."""
    x = maps.unsqueeze(1)
    for sigma, axis in ((sigma_y, 2), (sigma_x, 3)):
        radius = int(4.0 * sigma + 0.5)
        if radius < 1:
            continue
        offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).view(1, 1, -1, 1)
        padding = (0, 0, radius, radius)
        if axis == 3:
            kernel, padding = kernel.transpose(2, 3), (radius, radius, 0, 0)
        x = F.conv2d(F.pad(x, padding, mode="replicate"), kernel)
    return x.squeeze(1)


class PatchCore(_FrozenBackboneDetector):
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
        **_FrozenBackboneDetector._common_constraints,
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

    @with_torch_threads
    def decision_function(self, X):
        """Largest patch distance to the memory bank of each image, batch by batch.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Higher = more anomalous.
        """
        check_is_fitted(self)
        return self._stream_scores(X, lambda x: self._distance_maps(x).amax(dim=(1, 2)))

    @with_torch_threads
    def anomaly_map(self, X):
        """Per-pixel anomaly maps at the resolution of the input images.

        Patch distances are bilinearly upsampled to the image size, then blurred by a
        Gaussian of sigma 4 px at the backbone input size (``4 * H / input_size`` image
        pixels).

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples, H, W), float64
        """
        check_is_fitted(self)
        return self._stream_maps(X)


# -- PaDiM ---------------------------------------------------------------------------------


class PaDiM(_FrozenBackboneDetector):
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
        **_FrozenBackboneDetector._common_constraints,
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
        scores = torch.cat([self._score_maps(x).amax(dim=(1, 2)) for x in self._inputs(X)])
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

    @with_torch_threads
    def decision_function(self, X):
        """Maximum of each image's smoothed Mahalanobis map at ``input_size``.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Higher = more anomalous.
        """
        check_is_fitted(self)
        return self._stream_scores(X, lambda x: self._score_maps(x).amax(dim=(1, 2)))

    @with_torch_threads
    def anomaly_map(self, X):
        """Per-pixel anomaly maps at the resolution of the input images.

        Mahalanobis distances (in units of the training spread at each position) are
        bilinearly upsampled to the image size, then blurred by a Gaussian of sigma 4 px at
        the backbone input size (``4 * H / input_size`` image pixels).

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples, H, W), float64
        """
        check_is_fitted(self)
        return self._stream_maps(X)
