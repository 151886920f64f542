"""The modern-Hopfield memory of learnable normal prototypes, read at every position."""

import torch
import torch.nn.functional as F
from torch import nn

from .losses import memory_regularizer
from .positions import positions


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
        queries = positions(features)  # (N*H*W, C)
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
        queries = positions(features)  # (B*H*W, C)
        logits = self.beta * F.normalize(queries, dim=1) @ F.normalize(self.prototypes, dim=1).T
        attention = logits.softmax(dim=1)  # (B*H*W, K)
        retrieved = attention @ self.prototypes  # (B*H*W, C)
        retrieved = retrieved.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return retrieved, attention

    def regularizer(self, attention):
        """Prototypes kept apart and all in use (:func:`~skmcad.nn.losses.memory_regularizer`)."""
        return memory_regularizer(self.prototypes, attention)
