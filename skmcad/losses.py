"""Losses of stage 1: NT-Xent contrast, memory consistency and the anti-collapse regulariser."""

import math

import torch
import torch.nn.functional as F


def nt_xent(z1, z2, temperature):
    """Normalised temperature-scaled cross entropy (SimCLR), symmetrised over the two views.

    Each of the ``2N`` embeddings has its other view as the positive and the remaining
    ``2N - 2`` embeddings of the batch as negatives.

    Parameters
    ----------
    z1, z2 : Tensor of shape (N, D)
        Embeddings of the two views; row ``i`` of each comes from the same sample.
    temperature : float

    Returns
    -------
    Tensor
        Scalar mean loss over the ``2N`` anchors.
    """
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    similarity = z @ z.T / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, positives)


def memory_consistency(features, retrieved):
    """Mean cosine distance between features and their memory reads, over all positions."""
    return (1.0 - F.cosine_similarity(features, retrieved, dim=1)).mean()


def memory_regularizer(prototypes, attention):
    """Keep prototypes apart (no collapse) and all of them in use.

    The first term is the mean squared cosine similarity between distinct prototypes; the
    second is the KL divergence between the batch's mean attention and the uniform
    distribution over prototypes, zero when every prototype is read equally often.
    """
    k = len(prototypes)
    if k < 2:
        return prototypes.new_zeros(())
    unit = F.normalize(prototypes, dim=1)
    gram = unit @ unit.T  # (K, K)
    off_diagonal = gram[~torch.eye(k, dtype=torch.bool, device=gram.device)]
    spread = off_diagonal.pow(2).mean()
    usage = attention.mean(dim=0).clamp_min(1e-12)  # (K,)
    balance = (usage * usage.log()).sum() + math.log(k)
    return spread + balance
