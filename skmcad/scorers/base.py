"""What every stage-2 scorer offers, and the pieces scorers share.

A scorer reads, for a batch, the per-scale deviation maps ``D_s`` (B, H_s, W_s) between
features and their memory reads and the feature maps ``F_s`` (B, C_s, H_s, W_s) themselves:

- ``fit_statistics(outputs)`` sets what it estimates from held-out normal data, given an
  iterable of ``(maps, features)`` batches;
- ``forward(maps, features)`` gives one score per input, higher = more anomalous (a logit
  where stage 2 trains the scorer);
- ``anomaly_maps(maps, features, size)`` gives the dense (B, H, W) map at ``size``;
- ``trainable`` says whether stage 2 trains it against synthetic (and labelled) anomalies,
  with Adam at ``learning_rate``, ``echo_steps`` optimiser steps per batch of frozen outputs
  (:func:`skmcad.stage2.train_stage2`).
"""

import torch
import torch.nn.functional as F
from torch import nn


class Scorer(nn.Module):
    """Base of the stage-2 scorers (see the module's description of the interface)."""

    trainable = True
    # few parameters on standardised deviations: a large fixed step size trains a scorer in
    # a few epochs whatever the learning rate of stage 1
    learning_rate = 0.05
    echo_steps = 1

    def fit_statistics(self, outputs):
        raise NotImplementedError

    def forward(self, maps, features):
        raise NotImplementedError

    def anomaly_maps(self, maps, features, size):
        raise NotImplementedError


def map_statistics(outputs):
    """Per-scale mean and standard deviation of the deviation values over all positions
    of the ``(maps, features)`` batches in ``outputs`` (float64 sums)."""
    totals = None
    for maps, _ in outputs:
        batch = [torch.stack([d.double().sum(), d.double().pow(2).sum(),
                              torch.tensor(float(d.numel()), dtype=torch.float64,
                                           device=d.device)]) for d in maps]
        totals = batch if totals is None else [a + b for a, b in zip(totals, batch)]
    totals = torch.stack(totals).cpu()  # (S, 3)
    means = totals[:, 0] / totals[:, 2]
    stds = (totals[:, 1] / totals[:, 2] - means ** 2).clamp_min(0).sqrt()
    return means.tolist(), stds.tolist()


def pooled_descriptors(features):
    """(B, sum C_s): each scale's feature map averaged over positions, unit-normalised per
    scale, concatenated."""
    return torch.cat([F.normalize(f.mean(dim=(2, 3)), dim=1) for f in features], dim=1)


def upsampled(maps, size):
    """List of (B, H_s, W_s) maps -> list of (B, H, W) maps, bilinear."""
    return [F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            for m in maps]
