"""PatchCore's greedy coreset: a subset of vectors that covers them all.

A random subset of a large set of training vectors keeps their density but can miss rare
normal detail; the greedy k-center subset adds, one at a time, the vector farthest from those
chosen so far, so every training vector has a chosen one near it. PatchCore draws its memory
bank this way; the kNN banks of :class:`skmcad.nn.neighbour_memory.NearestNeighbourMemory`
can too.
"""

import torch
from sklearn.utils import check_random_state

PROJECTION_DIM = 128  # PatchCore's random projection: distances kept, each step cheaper


def greedy_coreset(features, n_select, random_state=None, projection_dim=PROJECTION_DIM):
    """PatchCore's approximate greedy k-center coreset.

    Features are randomly projected to ``projection_dim`` dimensions (when they have more);
    from a random first point, the point farthest from the points chosen so far is added,
    ``n_select`` times.

    Parameters
    ----------
    features : Tensor of shape (n, d)
    n_select : int
        Points to choose, at most n.
    random_state : int, RandomState instance or None
        Seeds the projection and the first point.
    projection_dim : int, default=128

    Returns
    -------
    Tensor of shape (n_select,), int64
        Indices of the chosen rows, in the order chosen.
    """
    rng = check_random_state(random_state)
    generator = torch.Generator().manual_seed(int(rng.randint(2 ** 31)))
    points = features.float()
    if points.shape[1] > projection_dim:
        projection = torch.randn(points.shape[1], projection_dim, generator=generator)
        points = points @ (projection / projection_dim ** 0.5).to(points.device)
    squared_norms = (points * points).sum(dim=1)
    nearest = torch.full_like(squared_norms, float("inf"))  # squared distance to the coreset
    chosen = torch.empty(n_select, dtype=torch.long, device=points.device)
    index = torch.tensor(int(rng.randint(len(points))), device=points.device)
    for i in range(n_select):  # indices stay tensors: no device sync per step on GPU
        chosen[i] = index
        distances = torch.addmv(squared_norms + squared_norms[index], points, points[index],
                                alpha=-2.0)
        torch.minimum(nearest, distances, out=nearest)
        index = nearest.argmax()
    return chosen
