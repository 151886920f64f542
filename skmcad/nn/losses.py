"""Losses of stage 1: NT-Xent contrast, mean-shifted contrast, memory consistency and the
anti-collapse regulariser."""

import math

import torch
import torch.nn.functional as F


def nt_xent(z1, z2, temperature, negatives=None):
    """Normalised temperature-scaled cross entropy (SimCLR), symmetrised over the two views.

    Each of the ``2N`` embeddings has its other view as the positive and the remaining
    ``2N - 2`` embeddings of the batch, plus any extra ``negatives``, as negatives.

    Parameters
    ----------
    z1, z2 : Tensor of shape (N, D)
        Embeddings of the two views; row ``i`` of each comes from the same sample.
    temperature : float
    negatives : Tensor of shape (M, D), optional
        Embeddings that are never positives (labelled anomalies).

    Returns
    -------
    Tensor
        Scalar mean loss over the ``2N`` anchors.
    """
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    candidates = z if negatives is None else torch.cat([z, F.normalize(negatives, dim=1)])
    similarity = z @ candidates.T / temperature  # (2N, 2N + M)
    self_mask = torch.zeros_like(similarity, dtype=torch.bool)
    self_mask[:, :2 * n] = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.arange(2 * n, device=z.device).roll(n)  # i <-> i + n
    return F.cross_entropy(similarity, positives)


def mean_shifted_contrast(z1, z2, centre, temperature, negatives=None):
    """Mean-shifted contrastive loss (Reiss and Hoshen, AAAI 2023), which adapts pretrained
    features to one normal class without collapsing them.

    The unit-normalised embeddings are shifted by ``centre`` (the unit mean of the normal
    class's initial embeddings) and re-normalised; :func:`nt_xent` contrasts the shifted
    views, so the features spread around the centre instead of piling onto it, and an
    angular term ``1 - <z, centre>`` per view pulls the class together.

    Parameters
    ----------
    z1, z2 : Tensor of shape (N, D)
        Embeddings of two views; row ``i`` of each comes from the same sample.
    centre : Tensor of shape (D,)
        Unit vector, held fixed.
    temperature : float
    negatives : Tensor of shape (M, D), optional
        Embeddings shifted the same way and used as extra negatives only (never pulled to
        the centre): views that should not look normal, such as rotated normal images.

    Returns
    -------
    Tensor
        Scalar: the contrastive loss plus the mean angular term of each view.
    """
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (N, D)
    shifted1, shifted2 = (F.normalize(z - centre, dim=1) for z in (z1, z2))
    if negatives is not None:
        negatives = F.normalize(F.normalize(negatives, dim=1) - centre, dim=1)  # (M, D)
    compactness = (2.0 - z1 @ centre - z2 @ centre).mean()
    return nt_xent(shifted1, shifted2, temperature, negatives) + compactness


def memory_consistency(features, retrieved):
    """Mean cosine distance between features and their memory reads, over all positions."""
    return (1.0 - F.cosine_similarity(features, retrieved, dim=1)).mean()


def memory_regularizer(prototypes, attention):
    """Keep prototypes apart (no collapse) and all of them in use.

    The first term is the mean squared cosine similarity between distinct prototypes; the
    second is :func:`usage_balance`.
    """
    k = len(prototypes)
    if k < 2:
        return prototypes.new_zeros(())
    unit = F.normalize(prototypes, dim=1)
    gram = unit @ unit.T  # (K, K)
    off_diagonal = gram[~torch.eye(k, dtype=torch.bool, device=gram.device)]
    spread = off_diagonal.pow(2).mean()
    return spread + usage_balance(attention)


def usage_balance(attention):
    """KL divergence between the batch's mean attention (N, K) over the K prototypes and
    the uniform distribution: zero when every prototype is read equally often."""
    usage = attention.mean(dim=0).clamp_min(1e-12)  # (K,)
    return (usage * usage.log()).sum() + math.log(attention.shape[1])


def anomaly_margin(normal_deviation, anomaly_deviation):
    """Hinge pushing labelled anomalies' deviation above twice the normal batch's mean.

    Relative to the normal deviation, so it does not depend on the distance's scale; the
    normal side is detached: the anomalies move, the normal reference does not.

    Parameters
    ----------
    normal_deviation, anomaly_deviation : Tensor of shape (N,) and (M,)
        Mean deviation of each sample over its positions.
    """
    margin = 2.0 * normal_deviation.detach().mean()
    return F.relu(margin - anomaly_deviation).mean() / margin.clamp_min(1e-12)
