"""Memory modules of normal prototypes, one per scale."""

import torch
import torch.nn.functional as F
from torch import nn


class HopfieldMemory(nn.Module):
    """Learnable prototypes read by a modern-Hopfield update at every spatial position.

    ``r = softmax(beta * normalize(q) @ normalize(P).T) @ P``

    Parameters
    ----------
    n_prototypes : int
        Number of prototypes ``K``.
    dim : int
        Channel count ``C`` of the feature map the memory reads.
    beta : float
        Inverse temperature of the read; large values approach a nearest-prototype read.
    """

    def __init__(self, n_prototypes, dim, beta):
        super().__init__()
        self.beta = float(beta)
        self.prototypes = nn.Parameter(torch.randn(n_prototypes, dim) / dim ** 0.5)

    @torch.no_grad()
    def initialize_from(self, features, generator=None):
        """Set the prototypes to feature vectors drawn from random positions of ``features``."""
        queries = _positions(features)  # (N*H*W, C)
        index = torch.randint(len(queries), (len(self.prototypes),), generator=generator,
                              device=queries.device)
        self.prototypes.copy_(queries[index])

    def forward(self, features):
        """Read the memory at every position of ``features``.

        Returns
        -------
        retrieved : Tensor of shape (B, C, H, W)
        attention : Tensor of shape (B*H*W, K)
        """
        batch, channels, height, width = features.shape
        queries = _positions(features)  # (B*H*W, C)
        logits = self.beta * F.normalize(queries, dim=1) @ F.normalize(self.prototypes, dim=1).T
        attention = logits.softmax(dim=1)  # (B*H*W, K)
        retrieved = attention @ self.prototypes  # (B*H*W, C)
        retrieved = retrieved.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return retrieved, attention


class MeanMemory(nn.Module):
    """The no-memory ablation: every position is compared with the mean normal feature.

    Nothing is learned; :meth:`initialize_from` stores the mean of the training features.
    """

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("center", torch.zeros(dim))

    @torch.no_grad()
    def initialize_from(self, features, generator=None):
        self.center.copy_(_positions(features).mean(dim=0))

    def forward(self, features):
        batch, channels, height, width = features.shape
        retrieved = self.center.view(1, channels, 1, 1).expand(batch, channels, height, width)
        attention = features.new_ones(batch * height * width, 1)
        return retrieved, attention


def _positions(features):
    """(B, C, H, W) -> (B*H*W, C): one query per spatial position."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
