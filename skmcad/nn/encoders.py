"""Multi-scale encoders: each maps a batch to the list of its stage outputs, shallow to deep.

Every output is a feature map ``(B, C_s, H_s, W_s)``; the tabular encoder returns
``H_s = W_s = 1``. The ImageNet-pretrained encoder is in
:mod:`skmcad.nn.pretrained_encoder`.
"""

import torch.nn.functional as F
from torch import nn

from .efficientnet import BACKBONE_VARIANTS


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


def build_encoder(layout, config, input_statistics=None):
    """The encoder named by ``config["backbone"]`` for inputs of ``layout``.

    ``config`` is a resolved configuration (:func:`skmcad.presets.resolve_params`).
    ``input_statistics`` are the (mean, std) the inputs were standardised with; the
    pretrained encoder needs them to see raw pixel values.
    """
    backbone, width, input_size = config["backbone"], config["width"], config["input_size"]
    if (backbone == "mlp") != (layout.kind == "tabular"):
        images = " or ".join(repr(name) for name in ("resnet", *BACKBONE_VARIANTS))
        raise ValueError(f"backbone={backbone!r} does not fit {layout.kind} input; use "
                         f"'mlp' for tabular data and {images} for images.")
    if backbone == "mlp":
        return MLPEncoder(layout.n_features, width=4 * width)
    if backbone == "resnet":
        encoder = ResNetEncoder(layout.image_size[0], width)
        return Resized(encoder, input_size) if input_size else encoder
    from .pretrained_encoder import DEFAULT_INPUT_SIZE, PretrainedEncoder

    return PretrainedEncoder(config["stages"], *input_statistics,
                             input_size or DEFAULT_INPUT_SIZE, config["neighbourhood"],
                             config["image_scale"], variant=BACKBONE_VARIANTS[backbone])
