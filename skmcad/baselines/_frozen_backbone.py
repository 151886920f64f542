"""What the frozen-backbone baselines share: the backbone, its input, batching, kNN."""

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from pyod.models.base import BaseDetector
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..nn.efficientnet import (BACKBONE_VARIANTS, INPUT_MEAN, INPUT_STD, fuse_bn,
                              load_pretrained)
from ..inputs import infer_layout, iter_batches
from ..threads import with_torch_threads

BLUR_SIGMA = 4.0  # px at the backbone input size, as in PatchCore
MAX_DISTANCES = 2 ** 24  # elements of one chunk of a distance matrix (64 MiB in float32)


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

    @with_torch_threads
    def decision_function(self, X):
        """Anomaly scores of images, batch by batch, as the class description defines them.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Higher = more anomalous.
        """
        check_is_fitted(self)
        X = self._check_images(X, reset=False)
        scores = np.empty(len(X))
        start = 0
        for x in self._inputs(X):
            scores[start:start + len(x)] = self._batch_scores(x).double().cpu().numpy()
            start += len(x)
        return scores

    def _batch_scores(self, x):
        """Scores of a batch of backbone inputs: (B,)."""
        raise NotImplementedError


class _PatchMapDetector(_FrozenBackboneDetector):
    """A frozen-backbone baseline that scores every position of ``stages``' maps
    (``_distance_maps``), and maps those scores onto the images' pixels."""

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

    def _distance_maps(self, x):
        """Score of every position of backbone inputs: (B, h, w)."""
        raise NotImplementedError

    @with_torch_threads
    def anomaly_map(self, X):
        """Per-pixel anomaly maps at the resolution of the input images.

        The position scores (as the class description defines them) are bilinearly
        upsampled to the image size, then blurred by a Gaussian of sigma 4 px at the
        backbone input size (``4 * H / input_size`` image pixels).

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples, H, W), float64
        """
        check_is_fitted(self)
        X = self._check_images(X, reset=False)
        size = tuple(self.layout_.image_size[1:])
        maps = np.empty((len(X), *size))
        start = 0
        for x in self._inputs(X):
            maps[start:start + len(x)] = self._smoothed(self._distance_maps(x), size).double().cpu()
            start += len(x)
        return maps


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
