"""A memory of prototypes on a 2-D grid, read at continuous coordinates (as GRAD/CRAD,
Jung et al. 2023-24)."""

import math

import torch
from torch import nn

from .losses import usage_balance
from .positions import positions

# Prototypes are placed at the grid coordinates' atanh; the outermost ones at this fraction
# of the open interval's edge, so the grid spans about 4 standard deviations each way.
EDGE = 0.96


class GridMemory(nn.Module):
    """Prototypes on a ``side`` x ``side`` grid, read by bilinear interpolation.

    A small head (the ``locator``: a linear map and ``tanh``) gives each feature vector
    coordinates ``(x, y)`` in ``(-1, 1)^2`` on the grid; the read is the bilinear
    interpolation of the four prototypes around that point. Normal features thus live on
    a continuous 2-D sheet of prototypes rather than among isolated ones, and a read
    between prototypes is a blend of its neighbours, never of distant ones.

    The interpolation is written as attention over the ``side**2`` prototypes (four
    non-zero weights per query: products of 1-D "hat" functions), so the stage-1 terms that
    read attention (the usage balance) apply unchanged.

    Parameters
    ----------
    n_prototypes : int
        Prototypes wanted; the grid's side is ``round(sqrt(n_prototypes))`` (at least 2),
        so 256 gives 16 x 16.
    dim : int
        Channel count ``C`` of the feature map the memory reads.
    """

    def __init__(self, n_prototypes, dim):
        super().__init__()
        self.side = max(2, int(round(math.sqrt(n_prototypes))))
        # row-major: prototype i * side + j sits at row i (y) and column j (x)
        self.prototypes = nn.Parameter(torch.randn(self.side ** 2, dim) / dim ** 0.5)
        self.locator = nn.Linear(dim, 2)

    def coordinates(self, queries):
        """(N, C) -> (N, 2): the ``(x, y)`` grid coordinates of each query, in (-1, 1)."""
        return torch.tanh(self.locator(queries))

    def interpolation_weights(self, coordinates):
        """(N, 2) coordinates -> (N, side**2) bilinear weights of the prototypes."""
        cells = torch.arange(self.side, device=coordinates.device, dtype=coordinates.dtype)
        where = (coordinates + 1) * (self.side - 1) / 2  # (N, 2), in grid units
        hat = (1 - (where[:, :, None] - cells).abs()).clamp_min(0)  # (N, 2, side)
        weights = hat[:, 1, :, None] * hat[:, 0, None, :]  # (N, side_y, side_x)
        return weights.flatten(1)

    def forward(self, features):
        """Read the memory at every position of ``features`` (B, C, H, W).

        Returns
        -------
        retrieved : Tensor of shape (B, C, H, W)
        attention : Tensor of shape (B*H*W, side**2)
            The bilinear weights of each read.
        """
        batch, channels, height, width = features.shape
        queries = positions(features)  # (B*H*W, C)
        attention = self.interpolation_weights(self.coordinates(queries))  # (B*H*W, K)
        retrieved = attention @ self.prototypes  # (B*H*W, C)
        retrieved = retrieved.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return retrieved, attention

    @torch.no_grad()
    def initialize_from(self, features, generator=None):
        """Lay the grid on the features' first two principal directions.

        The locator starts as the projection on them, in units of twice their standard
        deviation, and each prototype where such a projection points: the mean plus the
        atanh of its grid coordinates along the two directions. A read then starts as the
        projection of a feature on the principal plane.
        """
        queries = positions(features).double()  # (N, C)
        mean = queries.mean(0)
        _, singular, directions = torch.linalg.svd(queries - mean, full_matrices=False)
        scale = 2 * singular[:2] / max(len(queries) - 1, 1) ** 0.5 + 1e-6  # (2,)
        axes = directions[:2]  # (2, C): x then y
        if axes.shape[0] < 2:  # a single channel: the second direction adds nothing
            axes = torch.cat([axes, torch.zeros_like(axes)])
            scale = torch.cat([scale, scale.new_ones(1)])
        self.locator.weight.copy_(axes / scale[:, None])
        self.locator.bias.copy_(-(axes @ mean) / scale)
        ticks = torch.atanh(torch.linspace(-EDGE, EDGE, self.side, dtype=torch.float64,
                                           device=mean.device))
        y, x = torch.meshgrid(ticks, ticks, indexing="ij")  # row-major, as the prototypes
        grid = (mean + (x.reshape(-1, 1) * scale[0]) * axes[0]
                + (y.reshape(-1, 1) * scale[1]) * axes[1])  # (side**2, C)
        self.prototypes.copy_(grid.to(self.prototypes.dtype))

    def regularizer(self, attention):
        """Every part of the grid in use; no spread term, which would tear the sheet apart."""
        return usage_balance(attention)
