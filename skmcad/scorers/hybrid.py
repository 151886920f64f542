"""A dense hybrid scorer: memory deviation plus a discriminative head at every position
(as DenseHybrid, Grcic et al. 2022)."""

from torch import nn
import torch.nn.functional as F

from .base import upsampled
from .learned import DenseScorer, finest_size


class HybridScorer(DenseScorer):
    """Per position ``a_s = w_s * z_s + h_s(F_s)``; the map is their mean over scales.

    ``z_s`` is scale ``s``'s standardised deviation map (as in :class:`DeviationScorer`)
    and ``h_s`` a 1x1 convolution of its feature map: a discriminative head that learns,
    position by position, what the synthetic anomalies (and, in the unbalanced setting, the
    labelled ones) look like. The per-scale maps, upsampled to the finest scale's grid and
    averaged, are the dense anomaly map; the image score pools it as
    :class:`DeviationScorer` pools each scale (a learned mix of mean, top-fraction mean and
    maximum). The heads start at zero, so an untrained hybrid scorer is the deviation alone.

    Parameters
    ----------
    channels : sequence of int
        ``C_s`` of each scale.
    top_fraction : float
    scale_prior : sequence of float or None
    normalise : bool
        Unit-normalise the features the heads read (True for the "cosine" distance).
    """

    def __init__(self, channels, top_fraction=0.1, scale_prior=None, normalise=True):
        super().__init__(channels, top_fraction, scale_prior=scale_prior)
        self.normalise = bool(normalise)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in channels)
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def dense_map(self, maps, features, size=None):
        """(B, H, W): the hybrid map, at ``size`` or the finest scale's grid."""
        size = size or finest_size(maps)
        per_scale = []
        for z, f, weight, head in zip(self.standardise(maps), features, self.scale_weights,
                                      self.heads):
            f = F.normalize(f, dim=1) if self.normalise else f
            per_scale.append(weight * z + head(f)[:, 0])  # (B, H_s, W_s)
        return sum(upsampled(per_scale, size)) / len(per_scale)
