"""Stage 2: the anomaly distance detector that turns per-scale deviation maps into a score."""

import torch
import torch.nn.functional as F
from torch import nn

_SOFTPLUS_ZERO = float(F.softplus(torch.zeros(())))


class DeviationScorer(nn.Module):
    """Weighted, pooled per-scale deviation: ``score = sum_s w_s * pool_s(z_s) + b``.

    ``z_s`` is the deviation map of scale ``s`` standardised with statistics of held-out
    normal data, so scales are comparable. ``pool_s`` is a learned convex mix of the
    map's mean, the mean of its top ``top_fraction`` positions, and its maximum;
    ``w_s > 0``. The score is monotone in every deviation, so training against synthetic
    negatives can re-weight scales and pooling but never invert the memory's signal.
    At initialisation (and with ``stage2_epochs=0``) it is the plain mean of the three
    pooled values over scales.

    With ``descriptor_dim`` the scorer is hybrid (as DenseHybrid): a linear
    discriminative head on the pooled feature descriptors adds its logit to the deviation
    score. It starts at zero and learns "is this from the normal data?" from the labelled
    anomalies and the synthetic ones.

    Parameters
    ----------
    n_scales : int
    top_fraction : float
    descriptor_dim : int or None
    scale_prior : sequence of float or None
        Starting ``w_s`` (positive); None starts every scale at 1. Tabular networks start
        their input scales at the weight of all learned scales together
        (:attr:`~skmcad.networks.MCADNetwork.scale_prior`).
    """

    def __init__(self, n_scales, top_fraction=0.1, descriptor_dim=None, scale_prior=None):
        super().__init__()
        self.top_fraction = top_fraction
        self.head = None
        if descriptor_dim:
            self.head = nn.Linear(descriptor_dim, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        logits = torch.zeros(n_scales)
        if scale_prior is not None:
            # softplus(l) / softplus(0) = w  <=>  l = log(expm1(w * log 2))
            weights = torch.as_tensor(scale_prior, dtype=torch.float64)
            logits = torch.where(weights == 1, 0.0,
                                 torch.expm1(weights * _SOFTPLUS_ZERO).log()).float()
        self.scale_logits = nn.Parameter(logits)
        self.pool_logits = nn.Parameter(torch.zeros(n_scales, 3))
        self.bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("map_mean", torch.zeros(n_scales))
        self.register_buffer("map_std", torch.ones(n_scales))

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
        columns = []
        for z, logits in zip(self.standardise(maps), self.pool_logits):
            flat = z.flatten(1)  # (B, H*W)
            k = max(1, int(round(self.top_fraction * flat.shape[1])))
            stats = torch.stack(
                [flat.mean(1), flat.topk(k, dim=1).values.mean(1), flat.amax(1)], dim=1
            )  # (B, 3)
            columns.append((stats * logits.softmax(0)).sum(1))  # (B,)
        return torch.stack(columns, dim=1)

    def forward(self, maps, descriptors=None):
        score = (self.pooled(maps) * self.scale_weights).sum(1) / len(maps) + self.bias  # (B,)
        if self.head is not None:
            score = score + self.head(descriptors)[:, 0]
        return score

    def anomaly_maps(self, maps, size):
        """Weighted sum of the standardised maps, each upsampled to ``size`` = (H, W)."""
        total = 0.0
        for z, weight in zip(self.standardise(maps), self.scale_weights):
            z = F.interpolate(z[:, None], size=size, mode="bilinear", align_corners=False)
            total = total + weight * z[:, 0]
        return total / len(maps)  # (B, H, W)
