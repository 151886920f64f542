"""A convolutional stage-2 detector on the stacked per-scale deviation maps."""

import torch
from torch import nn

from .base import upsampled
from .learned import DenseScorer, finest_size


class ConvScorer(DenseScorer):
    """Per position ``a = sum_s w_s z_s / S + g(Z)``: the monotone mix of the standardised
    deviations plus a small CNN ``g`` on all of them together.

    ``Z`` (B, S, H, W) stacks the standardised deviation maps ``z_s`` of the ``S`` scales,
    each resized (bilinear) to the finest scale's grid. ``g`` is two 3x3 convolutions of
    ``hidden`` channels with ReLUs and a 1x1 convolution to one channel: it sees each
    position's neighbourhood at every scale at once, so it can learn which pattern of
    deviations across scales and neighbours marks the synthetic anomalies (and, in the
    unbalanced setting, the labelled ones). ``a`` is the dense anomaly map; the image score
    pools it (a learned mix of mean, top-fraction mean and maximum). ``g``'s last layer
    starts at zero, so an untrained convolutional scorer is the deviation alone, as
    :class:`~skmcad.scorers.HybridScorer` untrained.

    Parameters
    ----------
    channels : sequence of int
        ``C_s`` of each scale: ``g`` reads one map per scale, the discriminative head
        their pooled features.
    top_fraction : float
    scale_prior : sequence of float or None
    hidden : int
        Channels of ``g``'s hidden layers.
    discriminative : bool
        Add the linear head on pooled feature descriptors of
        :class:`~skmcad.scorers.DeviationScorer` (the unbalanced setting): ``g`` reads
        deviations only, the head what the labelled anomalies look like.
    """

    # a CNN of about 2,800 weights: a smaller step than the mixes', and 8 steps per batch of
    # frozen outputs, so that one epoch of a thousand images trains it (about 30 steps)
    learning_rate = 0.01
    echo_steps = 8

    def __init__(self, channels, top_fraction=0.1, scale_prior=None, hidden=16,
                 discriminative=False):
        super().__init__(channels, top_fraction, scale_prior=scale_prior,
                         discriminative=discriminative)
        # replicate padding: a border position sees its own deviations, not a zero that would
        # read as "exactly the normal mean"
        self.net = nn.Sequential(
            nn.Conv2d(len(channels), hidden, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def dense_map(self, maps, features, size=None):
        """(B, H, W): the map at ``size``, computed on the finest scale's grid."""
        z = torch.stack(upsampled(self.standardise(maps), finest_size(maps)), dim=1)  # (B,S,H,W)
        weights = self.scale_weights.to(z.dtype).view(1, -1, 1, 1)
        dense = (weights * z).mean(1) + self.net(z)[:, 0]  # (B, H, W)
        return dense if size is None else upsampled([dense], size)[0]
