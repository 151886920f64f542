"""The MCAD network: an encoder, one memory and one projection head per scale.

The memory of each scale is chosen by name (:data:`MEMORIES`); the deviation between
features and their memory read, per position, is what stage 2 scores.
"""

from functools import partial

import numpy as np
import torch.nn.functional as F
from torch import nn

from .encoders import build_encoder
from .grid_memory import GridMemory
from .heads import ProjectionHead
from .hopfield_memory import HopfieldMemory
from .neighbour_memory import NearestNeighbourMemory


# The learnable memories a scale can have.
MEMORIES = ("hopfield", "grid")
# The input scale of tabular data reads the k-th nearest training row: k is this fraction of
# the training rows in its bank, and at least PyOD KNN's default k. Unsupervised training rows
# hold the anomalies too, often in clusters of a few per cent of the data: a k below a
# cluster's size makes its members each other's near neighbours.
INPUT_NEIGHBOURS = 5
INPUT_NEIGHBOUR_FRACTION = 0.03
# The stage-2 scorer starts the kNN scale at this many times the weight of all the other
# scales together (on ODDS, with k at 3 % of the rows: 0.837 mean AUROC at 1 time, 0.844 at 2,
# 0.848 at 4; ADBench 0.779, 0.781, 0.783).
INPUT_NEIGHBOURS_PRIOR = 4.0
# The image scale of the pretrained encoder reads the k-th nearest training image (DN2's k).
IMAGE_NEIGHBOURS = 5


class MCADNetwork(nn.Module):
    """Encoder, one memory and one projection head per scale.

    Parameters
    ----------
    encoder : nn.Module
        Returns the list of stage outputs; has ``out_channels``.
    n_scales : int
        How many of the deepest stages are used.
    memory_sizes : sequence of int
        Prototypes per scale, shallow to deep.
    beta : float
        Inverse temperature of the Hopfield read.
    use_memory : bool
        False gives the no-memory ablation
        (:class:`~skmcad.nn.neighbour_memory.NearestNeighbourMemory`).
    memory : {"hopfield", "grid"}
        The memory of each learned scale (:data:`MEMORIES`).
    distance : {"cosine", "euclidean"}
        How features and reads are compared, see :func:`deviation`.
    proj_dim : int
    input_neighbours : int
        The least ``k`` of the k-th nearest training row the "neighbours" scale of an
        encoder reads (see below).
    input_neighbour_fraction : float or None
        That ``k`` as a fraction of the rows in the scale's bank (at least
        ``input_neighbours``); None reads the ``input_neighbours``-th.
    bank_size : int or "auto"
        The most training vectors each kNN bank keeps; "auto": each bank's own default
        (:class:`~skmcad.nn.neighbour_memory.NearestNeighbourMemory`: smaller for a greedy
        coreset).
    bank_coreset : {"greedy", "random"}
        How the bank of a learned scale without memory keeps ``bank_size`` of more training
        positions (:class:`~skmcad.nn.neighbour_memory.NearestNeighbourMemory`'s
        ``coreset``); the other banks, read by their k-th nearest vector, keep a random
        sample, which keeps the density that k measures.

    Notes
    -----
    An encoder may name the kind of each stage (``scale_kinds``; every stage is "learned"
    otherwise). A "learned" scale gets the memory named by ``memory`` (or, with
    ``use_memory=False``, a :class:`~skmcad.nn.neighbour_memory.NearestNeighbourMemory`).
    The input scales of :class:`MLPEncoder` have nothing to learn: the "neighbours" one reads the
    k-th nearest training row, ``k = max(input_neighbours, round(input_neighbour_fraction *
    n_bank))`` (its deviation is a kNN distance over the standardised rows, whatever
    ``use_memory``), the "prototypes" one a memory of
    prototypes learned in stage 1 by the memory terms only (the consistency and the
    regulariser; no contrast, the rows have no parameters to learn). The "image" scale of
    :class:`~skmcad.nn.pretrained_encoder.PretrainedEncoder` (the pooled deepest stage) reads
    the ``IMAGE_NEIGHBOURS``-th nearest training image, whatever ``use_memory``.
    ``scale_prior`` is the scorer's starting weight of each scale: 1, and for the
    "neighbours" scale ``INPUT_NEIGHBOURS_PRIOR`` (4) times as much as all the others
    together, for the "image" scale as much as all the others together.
    """

    def __init__(self, encoder, n_scales, memory_sizes, beta, use_memory=True,
                 distance="cosine", proj_dim=64, input_neighbours=INPUT_NEIGHBOURS,
                 memory="hopfield", input_neighbour_fraction=INPUT_NEIGHBOUR_FRACTION,
                 bank_size="auto", bank_coreset="greedy"):
        super().__init__()
        self.encoder = encoder
        self.n_scales = n_scales
        self.distance = distance
        channels = encoder.out_channels[-n_scales:]
        kinds = getattr(encoder, "scale_kinds", ["learned"] * len(encoder.out_channels))
        self.scale_kinds = list(kinds[-n_scales:])
        self.learned_scales = [kind == "learned" for kind in self.scale_kinds]
        memories = []
        bank = partial(NearestNeighbourMemory, metric=distance, bank_size=bank_size)
        nearest_bank = partial(bank, coreset=bank_coreset)
        for k, c, kind in zip(memory_sizes, channels, self.scale_kinds):
            if kind == "neighbours":
                memories.append(bank(c, n_neighbours=input_neighbours,
                                     neighbour_fraction=input_neighbour_fraction))
            elif kind == "image":
                memories.append(bank(c, n_neighbours=IMAGE_NEIGHBOURS))
            elif use_memory and memory == "grid":
                memories.append(GridMemory(k, c))
            elif use_memory:
                memories.append(HopfieldMemory(k, c, beta))
            else:  # each position reads its nearest training position: a coreset suits it
                memories.append(nearest_bank(c))
        together = float(max(n_scales - 1, 1))
        self.scale_prior = [INPUT_NEIGHBOURS_PRIOR * together if kind == "neighbours"
                            else together if kind == "image" else 1.0
                            for kind in self.scale_kinds]
        self.memories = nn.ModuleList(memories)
        self.heads = nn.ModuleList(ProjectionHead(c, proj_dim) for c in channels)

    def features(self, x):
        """The feature maps ``F_s`` of the last ``n_scales`` stages."""
        return self.encoder(x)[-self.n_scales:]

    def read(self, features):
        """Memory reads ``(r_s, attention_s)`` for each scale."""
        return [memory(f) for memory, f in zip(self.memories, features)]

    def deviation_maps(self, x, with_features=False):
        """Per-scale deviation maps ``D_s``, each (B, H_s, W_s); with ``with_features``,
        also the feature maps ``F_s`` they come from."""
        return self.deviations(self.features(x), with_features)

    def deviations(self, features, with_features=False):
        """:meth:`deviation_maps` of feature maps ``F_s`` already computed."""
        maps = [deviation(f, retrieved, self.distance)
                for f, (retrieved, _) in zip(features, self.read(features))]
        return (maps, features) if with_features else maps

    @property
    def channels(self):
        """Channel count ``C_s`` of each scale's feature map, shallow to deep."""
        return list(self.encoder.out_channels[-self.n_scales:])


def deviation(features, retrieved, distance="cosine"):
    """Distance between features and their reads at each position, (B, C, H, W) -> (B, H, W).

    "cosine": squared distance of the unit-normalised vectors, ``2 - 2 cos``; it compares
    directions, which is what convolutional features of images carry. "euclidean": mean
    squared difference; it keeps magnitudes, which carry most anomalies of tabular rows
    (values far outside their range).
    """
    if distance == "euclidean":
        return (features - retrieved).pow(2).mean(dim=1)
    diff = F.normalize(features, dim=1) - F.normalize(retrieved, dim=1)  # (B, C, H, W)
    return diff.pow(2).sum(dim=1)


def memory_sizes(memory_size, n_scales):
    """One prototype count per scale from an int or a per-scale sequence."""
    if isinstance(memory_size, (tuple, list)):
        sizes = list(memory_size)
        if len(sizes) != n_scales or not all(
                isinstance(k, (int, np.integer)) and k >= 1 for k in sizes):
            raise ValueError(f"memory_size must be a positive int or {n_scales} positive ints "
                             f"(one per scale); got {memory_size!r}.")
        return [int(k) for k in sizes]
    return [int(memory_size)] * n_scales


def build_network(layout, config, beta, use_memory, input_statistics=None, distance="auto",
                  memory="hopfield", bank_size="auto", bank_coreset="greedy"):
    """The full stage-1 network for ``layout`` and the resolved ``config``
    (:func:`skmcad.presets.resolve_params`), validated against the encoder's depth.

    ``distance="auto"`` is "euclidean" for tabular data and "cosine" for images.
    """
    if distance == "auto":
        distance = "euclidean" if layout.kind == "tabular" else "cosine"
    encoder = build_encoder(layout, config, input_statistics)
    n_scales, depth = config["n_scales"], len(encoder.out_channels)
    if n_scales > depth:
        raise ValueError(f"n_scales={n_scales} exceeds the {depth} stages of this encoder.")
    sizes = memory_sizes(config["memory_size"], n_scales)
    if config.get("image_scale"):  # the pretrained encoder's image scale: a kNN bank
        n_scales, sizes = n_scales + 1, sizes + [1]
    return MCADNetwork(encoder, n_scales, sizes, beta, use_memory, distance, memory=memory,
                       bank_size=bank_size, bank_coreset=bank_coreset)
