"""The default stage-2 scorer: a learned, monotone mix of pooled per-scale deviations."""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Scorer, map_statistics, pooled_descriptors, upsampled

_SOFTPLUS_ZERO = float(F.softplus(torch.zeros(())))


def pooled_statistics(z, top_fraction):
    """(B, H, W) map -> (B, 3): its mean, the mean of its top ``top_fraction`` positions
    and its maximum."""
    flat = z.flatten(1)  # (B, H*W)
    k = max(1, int(round(top_fraction * flat.shape[1])))
    return torch.stack([flat.mean(1), flat.topk(k, dim=1).values.mean(1), flat.amax(1)], dim=1)


def weight_logits(weights):
    """Logits ``l`` with ``softplus(l) / softplus(0) = w``: positive weights that start at
    ``weights`` (1 where None)."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    return torch.where(weights == 1, 0.0, torch.expm1(weights * _SOFTPLUS_ZERO).log()).float()


class DeviationScorer(Scorer):
    """Weighted, pooled per-scale deviation: ``score = sum_s w_s * pool_s(z_s) + b``.

    ``z_s`` is the deviation map of scale ``s`` standardised with statistics of held-out
    normal data, so scales are comparable. ``pool_s`` is a learned convex mix of the
    map's mean, the mean of its top ``top_fraction`` positions, and its maximum;
    ``w_s > 0``. The score is monotone in every deviation, so training against synthetic
    negatives can re-weight scales and pooling but never invert the memory's signal.
    At initialisation (and with ``stage2_epochs=0``) it is the plain mean of the three
    pooled values over scales.

    With ``discriminative=True`` (the unbalanced setting) a linear head on the pooled,
    unit-normalised feature descriptors adds its logit to the deviation score. It starts
    at zero and learns "is this from the normal data?" from the labelled anomalies and the
    synthetic ones.

    Parameters
    ----------
    channels : sequence of int
        ``C_s`` of each scale.
    top_fraction : float
    discriminative : bool
    scale_prior : sequence of float or None
        Starting ``w_s`` (positive); None starts every scale at 1. Tabular networks start
        their kNN scale at 4 times the weight of all learned scales together
        (:attr:`~skmcad.nn.network.MCADNetwork.scale_prior`).
    """

    def __init__(self, channels, top_fraction=0.1, discriminative=False, scale_prior=None):
        super().__init__()
        n_scales = len(channels)
        self.top_fraction = top_fraction
        self.head = None
        if discriminative:
            self.head = nn.Linear(sum(channels), 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.scale_logits = nn.Parameter(
            torch.zeros(n_scales) if scale_prior is None else weight_logits(scale_prior))
        self.pool_logits = nn.Parameter(torch.zeros(n_scales, 3))
        self.bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("map_mean", torch.zeros(n_scales))
        self.register_buffer("map_std", torch.ones(n_scales))

    def fit_statistics(self, outputs):
        self.set_statistics(*map_statistics(outputs))

    def set_statistics(self, means, stds):
        """Store the per-scale mean and standard deviation of held-out normal deviations."""
        self.map_mean.copy_(torch.as_tensor(means, dtype=self.map_mean.dtype))
        self.map_std.copy_(torch.as_tensor(stds, dtype=self.map_std.dtype).clamp_min(1e-6))

    @property
    def scale_weights(self):
        return F.softplus(self.scale_logits) / _SOFTPLUS_ZERO  # (S,), 1 at initialisation

    def standardise(self, maps):
        """List of (B, H_s, W_s) deviation maps -> list of standardised maps."""
        return [(d - m) / s for d, m, s in zip(maps, self.map_mean, self.map_std)]

    def pooled(self, maps):
        """(B, S): the pooled standardised deviation of each scale."""
        columns = [(pooled_statistics(z, self.top_fraction) * logits.softmax(0)).sum(1)
                   for z, logits in zip(self.standardise(maps), self.pool_logits)]
        return torch.stack(columns, dim=1)

    def forward(self, maps, features):
        score = (self.pooled(maps) * self.scale_weights).sum(1) / len(maps) + self.bias  # (B,)
        if self.head is not None:
            score = score + self.head(pooled_descriptors(features))[:, 0]
        return score

    def anomaly_maps(self, maps, features, size):
        """Weighted sum of the standardised maps, each upsampled to ``size`` = (H, W)."""
        total = sum(w * z for w, z in zip(self.scale_weights,
                                          upsampled(self.standardise(maps), size)))
        return total / len(maps)  # (B, H, W)


class DenseScorer(DeviationScorer):
    """Base of the scorers whose image score pools one dense map: ``dense_map(maps,
    features, size)`` gives the (B, H, W) map, the score is its learned mix of mean,
    top-fraction mean and maximum plus a bias (plus, with ``discriminative``, the linear head
    on pooled descriptors of :class:`DeviationScorer`), and :meth:`anomaly_maps` is the map
    itself."""

    def __init__(self, channels, top_fraction=0.1, scale_prior=None, discriminative=False):
        super().__init__(channels, top_fraction, discriminative=discriminative,
                         scale_prior=scale_prior)
        self.pool_logits = nn.Parameter(torch.zeros(3))

    def dense_map(self, maps, features, size=None):
        raise NotImplementedError

    def forward(self, maps, features):
        stats = pooled_statistics(self.dense_map(maps, features), self.top_fraction)  # (B, 3)
        score = (stats * self.pool_logits.softmax(0)).sum(1) + self.bias
        if self.head is not None:
            score = score + self.head(pooled_descriptors(features))[:, 0]
        return score

    def anomaly_maps(self, maps, features, size):
        return self.dense_map(maps, features, size)


def finest_size(maps):
    """(H, W) of the map with the most positions."""
    return max((m.shape[-2:] for m in maps), key=lambda hw: hw[0] * hw[1])
