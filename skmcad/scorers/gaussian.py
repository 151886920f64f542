"""A bounded Gaussian score on the multi-scale descriptors (as IGD, Chen et al. 2022)."""

import torch
import torch.nn.functional as F

from ..nn.positions import positions
from .base import Scorer, upsampled


class GaussianScorer(Scorer):
    """``score = 1 - exp(-(1/S) sum_s ||u_s - c_s||^2 / sigma_s)``, in [0, 1), in float64.

    ``u_s`` is scale ``s``'s feature map averaged over positions (unit-normalised when
    features are compared by direction), ``c_s`` the mean of ``u_s`` over held-out normal
    data and ``sigma_s`` their mean squared distance to it, so a typical normal input has
    ``||u_s - c_s||^2 / sigma_s`` near 1. The map is the same Gaussian per position: the
    feature vector of each position against the mean and spread of the normal positions of
    its scale. Nothing is trained in stage 2 (``trainable`` is False): the centres and
    spreads are estimated, in closed form, from held-out normal data.

    Parameters
    ----------
    channels : sequence of int
        ``C_s`` of each scale.
    normalise : bool
        Unit-normalise descriptors and position vectors (True for the "cosine" distance).
    """

    trainable = False

    def __init__(self, channels, normalise=True):
        super().__init__()
        self.channels, self.normalise = list(channels), bool(normalise)
        n_scales = len(self.channels)
        self.register_buffer("centre", torch.zeros(sum(self.channels)))
        self.register_buffer("sigma", torch.ones(n_scales))
        self.register_buffer("position_centre", torch.zeros(sum(self.channels)))
        self.register_buffer("position_sigma", torch.ones(n_scales))

    def _unit(self, x, dim):
        return F.normalize(x, dim=dim) if self.normalise else x

    def descriptors(self, features):
        """List of (B, C_s): each scale's pooled descriptor ``u_s``."""
        return [self._unit(f.mean(dim=(2, 3)), 1) for f in features]

    def position_vectors(self, features):
        """List of (B*H_s*W_s, C_s): each position's feature vector."""
        return [self._unit(positions(f), 1) for f in features]

    def fit_statistics(self, outputs):
        sums = None
        for _, features in outputs:
            batch = [_moments(rows) for rows in
                     self.descriptors(features) + self.position_vectors(features)]
            sums = batch if sums is None else [
                tuple(a + b for a, b in zip(s, t)) for s, t in zip(sums, batch)]
        centres, sigmas = [], []
        for total, total_sq, count in sums:
            centre = total / count  # (C,)
            centres.append(centre)
            # E||u - c||^2 = E||u||^2 - ||c||^2
            sigmas.append((total_sq / count - centre.pow(2).sum()).clamp_min(1e-12))
        n = len(self.channels)
        dtype = self.centre.dtype
        self.centre.copy_(torch.cat(centres[:n]).to(dtype))
        self.sigma.copy_(torch.stack(sigmas[:n]).to(dtype))
        self.position_centre.copy_(torch.cat(centres[n:]).to(dtype))
        self.position_sigma.copy_(torch.stack(sigmas[n:]).to(dtype))

    def squared_distances(self, features):
        """(B, S): ``||u_s - c_s||^2 / sigma_s`` of each input and scale."""
        centres = self.centre.split(self.channels)
        return torch.stack([(u - c).pow(2).sum(1) / s for u, c, s in
                            zip(self.descriptors(features), centres, self.sigma)], dim=1)

    def forward(self, maps, features):
        # float64: 1 - exp(-x) stays below 1, and distinct, up to x of about 37
        return -torch.expm1(-self.squared_distances(features).mean(1).double())  # (B,)

    def anomaly_maps(self, maps, features, size):
        centres = self.position_centre.split(self.channels)
        distances = []
        for f, v, c, s in zip(features, self.position_vectors(features), centres,
                              self.position_sigma):
            batch, _, height, width = f.shape
            distances.append(((v - c).pow(2).sum(1) / s).reshape(batch, height, width))
        total = sum(upsampled(distances, size)) / len(distances)  # (B, H, W)
        return -torch.expm1(-total.double())


def _moments(rows):
    """Sum of the rows, sum of their squared norms, and their count, in float64."""
    rows = rows.double()
    return rows.sum(0), rows.pow(2).sum(), torch.tensor(float(len(rows)), dtype=torch.float64,
                                                         device=rows.device)
