"""Torch modules: multi-scale encoders, projection heads and the MCAD network around them.

Every encoder maps a batch to the list of its stage outputs, shallow to deep, each a
feature map ``(B, C_s, H_s, W_s)``; tabular encoders return ``H_s = W_s = 1``. The MCAD
network keeps the last ``n_scales`` of them, one memory and one projection head per scale.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .memory import HopfieldMemory, NearestNeighbourMemory

# The input scale of tabular data reads the k-th nearest training row (PyOD KNN's default k).
INPUT_NEIGHBOURS = 5


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18 block)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """CIFAR-style residual network: a 3x3 stem and four stages of widths w, 2w, 4w, 8w.

    Parameters
    ----------
    in_channels : int
    width : int
        Channels of the first stage.
    blocks_per_stage : int
    """

    def __init__(self, in_channels, width=16, blocks_per_stage=1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.out_channels = [width, 2 * width, 4 * width, 8 * width]
        stages, channels = [], width
        for index, out_channels in enumerate(self.out_channels):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        features = []
        x = self.stem(x)  # (B, w, H, W)
        for stage in self.stages:
            x = stage(x)  # (B, C_s, H_s, W_s), halving H and W after the first stage
            features.append(x)
        return features


class MLPEncoder(nn.Module):
    """Fully connected encoder for tabular rows: the input, then ``n_layers``
    Linear-BatchNorm-ReLU stages.

    Each stage's output is one scale, returned as a ``(B, C, 1, 1)`` map. The two
    shallowest are the standardised row itself (``C = n_features``, nothing learned), read
    in two ways (``scale_kinds``, see :class:`MCADNetwork`): by a kNN search over the
    training rows ("neighbours") and by a small memory of prototypes ("prototypes").
    """

    def __init__(self, n_features, width=64, n_layers=3):
        super().__init__()
        self.out_channels = [n_features, n_features] + [width] * n_layers
        self.scale_kinds = ["neighbours", "prototypes"] + ["learned"] * n_layers
        dims = [n_features] + [width] * n_layers
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True))
            for d_in, d_out in zip(dims[:-1], dims[1:])
        )

    def forward(self, x):
        row = x[:, :, None, None]  # (B, d, 1, 1): the input scales
        features = [row, row]
        for stage in self.stages:
            x = stage(x)  # (B, width)
            features.append(x[:, :, None, None])  # (B, width, 1, 1)
        return features


class ProjectionHead(nn.Module):
    """Global average pooling then a two-layer MLP, as in SimCLR."""

    def __init__(self, in_channels, out_dim=64):
        super().__init__()
        hidden = max(in_channels, out_dim)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, features):
        return self.mlp(features.mean(dim=(2, 3)))  # (B, C, H, W) -> (B, out_dim)


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
        Inverse temperature of the memory read.
    use_memory : bool
        False gives the no-memory ablation (:class:`~skmcad.memory.NearestNeighbourMemory`).
    distance : {"cosine", "euclidean"}
        How features and reads are compared, see :func:`deviation`.
    proj_dim : int
    input_neighbours : int
        Which neighbour the "neighbours" scale of an encoder reads (see below).

    Notes
    -----
    An encoder may name the kind of each stage (``scale_kinds``; every stage is "learned"
    otherwise). A "learned" scale gets a :class:`~skmcad.memory.HopfieldMemory` (or, with
    ``use_memory=False``, a :class:`~skmcad.memory.NearestNeighbourMemory`). The input
    scales of :class:`MLPEncoder` have nothing to learn: the "neighbours" one reads the
    ``input_neighbours``-th nearest training row (its deviation is a kNN distance over the
    standardised rows, whatever ``use_memory``), the "prototypes" one a memory of
    prototypes learned in stage 1 by the memory terms only (the consistency and the
    regulariser; no contrast, the rows have no parameters to learn).
    ``scale_prior`` is the scorer's starting weight of each scale: 1, and for the
    "neighbours" scale as much as all the others together.
    """

    def __init__(self, encoder, n_scales, memory_sizes, beta, use_memory=True,
                 distance="cosine", proj_dim=64, input_neighbours=INPUT_NEIGHBOURS):
        super().__init__()
        self.encoder = encoder
        self.n_scales = n_scales
        self.distance = distance
        channels = encoder.out_channels[-n_scales:]
        kinds = getattr(encoder, "scale_kinds", ["learned"] * len(encoder.out_channels))
        self.scale_kinds = list(kinds[-n_scales:])
        self.learned_scales = [kind == "learned" for kind in self.scale_kinds]
        memories = []
        for k, c, kind in zip(memory_sizes, channels, self.scale_kinds):
            if kind == "neighbours":
                memories.append(NearestNeighbourMemory(c, distance,
                                                       n_neighbours=input_neighbours))
            elif use_memory:
                memories.append(HopfieldMemory(k, c, beta))
            else:
                memories.append(NearestNeighbourMemory(c, distance))
        self.scale_prior = [float(max(n_scales - 1, 1)) if kind == "neighbours" else 1.0
                            for kind in self.scale_kinds]
        self.memories = nn.ModuleList(memories)
        self.heads = nn.ModuleList(ProjectionHead(c, proj_dim) for c in channels)

    def features(self, x):
        """The feature maps ``F_s`` of the last ``n_scales`` stages."""
        return self.encoder(x)[-self.n_scales:]

    def read(self, features):
        """Memory reads ``(r_s, attention_s)`` for each scale."""
        return [memory(f) for memory, f in zip(self.memories, features)]

    def deviation_maps(self, x, with_descriptors=False):
        """Per-scale deviation maps ``D_s``, each (B, H_s, W_s).

        With ``with_descriptors``, also the (B, sum C_s) descriptor of each input: its
        feature maps pooled over positions, unit-normalised per scale and concatenated.
        """
        features = self.features(x)
        maps = [deviation(f, retrieved, self.distance)
                for f, (retrieved, _) in zip(features, self.read(features))]
        if not with_descriptors:
            return maps
        pooled = [F.normalize(f.mean(dim=(2, 3)), dim=1) for f in features]
        return maps, torch.cat(pooled, dim=1)

    @property
    def descriptor_dim(self):
        return sum(self.encoder.out_channels[-self.n_scales:])


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


class Resized(nn.Module):
    """Resize images to ``size`` x ``size`` before an encoder (bilinear, on the device)."""

    def __init__(self, encoder, size):
        super().__init__()
        self.encoder, self.size = encoder, int(size)
        self.out_channels = encoder.out_channels

    def forward(self, x):
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > self.size)
        return self.encoder(x)


def build_encoder(layout, backbone, width, n_scales, input_size=None, input_statistics=None):
    """The encoder named by ``backbone`` for inputs of ``layout``.

    ``input_statistics`` are the (mean, std) the inputs were standardised with; the
    pretrained encoder needs them to see raw pixel values.
    """
    if (backbone == "mlp") != (layout.kind == "tabular"):
        raise ValueError(f"backbone={backbone!r} does not fit {layout.kind} input; use "
                         f"'mlp' for tabular data and 'resnet' or 'efficientnet-lite0' for images.")
    if backbone == "mlp":
        return MLPEncoder(layout.n_features, width=4 * width)
    if backbone == "resnet":
        encoder = ResNetEncoder(layout.image_size[0], width)
        return Resized(encoder, input_size) if input_size else encoder
    from .pretrained import DEFAULT_INPUT_SIZE, PretrainedEncoder

    return PretrainedEncoder(n_scales, *input_statistics, input_size or DEFAULT_INPUT_SIZE)


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


def build_network(layout, backbone, width, n_scales, memory_size, beta, use_memory,
                  input_size=None, input_statistics=None, distance="auto"):
    """The full stage-1 network for ``layout``, validated against the encoder's depth.

    ``distance="auto"`` is "euclidean" for tabular data and "cosine" for images.
    """
    if distance == "auto":
        distance = "euclidean" if layout.kind == "tabular" else "cosine"
    encoder = build_encoder(layout, backbone, width, n_scales, input_size, input_statistics)
    depth = len(encoder.out_channels)
    if n_scales > depth:
        raise ValueError(f"n_scales={n_scales} exceeds the {depth} stages of this encoder.")
    return MCADNetwork(encoder, n_scales, memory_sizes(memory_size, n_scales), beta, use_memory,
                       distance)
