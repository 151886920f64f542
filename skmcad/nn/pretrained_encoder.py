"""The ImageNet-pretrained encoder: EfficientNet-Lite stages, trainable adapters.

Training a CNN from scratch does not converge in a few CPU minutes; a pretrained backbone
gives multi-scale features that are good from the first step. Its stages up to 5 stay
frozen; its last two (6 and 7, the ``tail``), where read, can be adapted to the normal
class by stage 1 (:func:`skmcad.stage1.adapt_backbone`), which then learns light residual
adapters on every stage read, the memories and the projection heads.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .efficientnet import INPUT_MEAN, INPUT_STD, STAGE_CHANNELS, fuse_bn, load_pretrained

N_STAGES = 7
# Stages from this one on (6 and 7, 1/32 of the input size) form the adaptable tail: their
# maps are small, so they train fast on the cached output of the frozen stages before them.
TAIL_FROM = 6
DEFAULT_INPUT_SIZE = 96
# On CPU the backbone runs over chunks of this many images: its activations then stay small
# enough to be reused by the allocator and to sit in cache; at 96 px a chunk of 64 scores
# about 1.6x faster than one of 256 on 2 cores. GPUs take the whole batch at once.
CPU_CHUNK = 64


def native_bfloat16(device):
    """Whether ``device`` computes bfloat16 convolutions natively (CUDA GPUs, CPUs with
    AVX512-BF16 or AMX); elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(supported and supported())


def frozen_stage_maps(backbone, x, stages, prepare=None):
    """Feature maps of ``stages`` of a frozen backbone, without gradients.

    Runs over chunks of ``CPU_CHUNK`` images on CPU (the whole batch on GPU), under
    bfloat16 autocast where :func:`native_bfloat16` says the device computes it natively.

    Parameters
    ----------
    backbone : skmcad.nn.efficientnet.EfficientNetLite
    x : Tensor of shape (B, C, H, W)
    stages : sequence of int
    prepare : callable, optional
        Turns a chunk of ``x`` into the backbone's input (resizing, normalising): applied
        chunk by chunk, so the resized images are never held for the whole batch.

    Returns
    -------
    list of Tensor of shape (B, C_s, H_s, W_s)
        float32, or bfloat16 where autocast ran.
    """
    chunks = x.split(CPU_CHUNK) if x.device.type == "cpu" else [x]
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16,
                                         enabled=native_bfloat16(x.device)):
        per_chunk = [backbone.stage_features(prepare(c) if prepare else c, stages)
                     for c in chunks]
    return [torch.cat(maps) for maps in zip(*per_chunk)]


def local_average(feature_map, size):
    """Each position of a (B, C, H, W) map averaged over its ``size`` x ``size`` neighbours
    (odd ``size``; at borders over those inside the map): PatchCore's local aggregation."""
    if size == 1:
        return feature_map
    return F.avg_pool2d(feature_map, size, stride=1, padding=size // 2, count_include_pad=False)


class PretrainedEncoder(nn.Module):
    """EfficientNet-Lite0 or -Lite1 whose chosen stages each get a residual 1x1 adapter.

    Stages 1-5 are frozen (``backbone``); stages 6 and 7, when read, form the ``tail``,
    frozen too unless stage 1 adapts it (its parameters are created with
    ``requires_grad=False``).

    Parameters
    ----------
    stages : sequence of int
        Stages read, from 1 to 7, shallow to deep. Their strides: 2 (stage 1), 4 (2), 8 (3),
        16 (4 and 5), 32 (6 and 7); channels :data:`STAGE_CHANNELS`.
    input_mean, input_std : sequence of float
        Per-channel statistics the inputs were standardised with; the encoder undoes them
        so the backbone sees the pixel range its weights expect.
    input_size : int
        Side images are resized to; ImageNet features need objects of some tens of pixels.
    neighbourhood : int
        Each position's frozen feature is averaged over its ``neighbourhood`` x
        ``neighbourhood`` neighbours (PatchCore's local aggregation; 1: none), so a feature
        describes a patch a little larger than its receptive field's centre.
    image_scale : bool
        Add the whole image as the coarsest scale, after the stages: the deepest stage's
        backbone map, globally average-pooled, (B, C, 1, 1). Its kind is "image"
        (``scale_kinds``): the network reads it with a kNN bank of the training images.
    variant : {"lite0", "lite1"}
        The backbone (:data:`skmcad.nn.efficientnet.VARIANTS`); both have the same stages
        and channels, Lite1 more blocks.

    Notes
    -----
    The frozen backbone runs in bfloat16 where the device computes it natively
    (``native_bfloat16``): about twice the float32 speed on such CPUs, and its features
    differ from float32 ones by bfloat16 rounding only. Adapters, memories and scorer stay
    in float32; a fitted detector moved to a device without native bfloat16 scores in
    float32, which shifts its scores by that rounding.
    """

    def __init__(self, stages, input_mean, input_std, input_size=DEFAULT_INPUT_SIZE,
                 neighbourhood=1, image_scale=False, variant="lite0"):
        super().__init__()
        stages = sorted(int(s) for s in stages)
        if not stages or not all(1 <= s <= N_STAGES for s in stages):
            raise ValueError(f"stages={stages} must be stage numbers from 1 to {N_STAGES} of "
                             f"the efficientnet-{variant} backbone.")
        # only the stages up to the deepest one read are built and run; the frozen part ends
        # at stage 5 when the tail is read
        front_last = min(stages[-1], TAIL_FROM - 1)
        backbone = fuse_bn(load_pretrained(n_stages=front_last, variant=variant))
        self.backbone = backbone.requires_grad_(False).to(memory_format=torch.channels_last)
        self.tail_stages = list(range(TAIL_FROM, stages[-1] + 1))
        self.tail = nn.ModuleList()  # blocks of the tail stages, in order
        self.tail_ends = []  # one past the index in ``tail`` of each tail stage's last block
        if self.tail_stages:
            full = fuse_bn(load_pretrained(n_stages=stages[-1], variant=variant))
            first = full.stage_ends[TAIL_FROM - 2]
            self.tail.extend(full._blocks[first:])
            self.tail_ends = [end - first for end in full.stage_ends[TAIL_FROM - 1:]]
            self.tail.requires_grad_(False)
        self.stages = stages
        self.out_channels = [STAGE_CHANNELS[s - 1] for s in self.stages]
        self.adapters = nn.ModuleList(nn.Conv2d(c, c, 1) for c in self.out_channels)
        self.image_scale = bool(image_scale)
        self.scale_kinds = ["learned"] * len(stages) + ["image"] * self.image_scale
        self.out_channels = self.out_channels + self.out_channels[-1:] * self.image_scale
        for adapter in self.adapters:  # identity at the start: the pretrained features
            nn.init.zeros_(adapter.weight)
            nn.init.zeros_(adapter.bias)
        self.input_size = int(input_size)
        if int(neighbourhood) < 1 or int(neighbourhood) % 2 == 0:
            raise ValueError(f"neighbourhood must be an odd positive int (the side of the "
                             f"square averaged, centred on each position); got {neighbourhood}.")
        self.neighbourhood = int(neighbourhood)
        self.register_buffer("input_mean", torch.as_tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.as_tensor(input_std, dtype=torch.float32))
        # buffers, so they live on the model's device: no host-to-device copy per batch
        self.register_buffer("backbone_mean", torch.tensor(INPUT_MEAN), persistent=False)
        self.register_buffer("backbone_std", torch.tensor(INPUT_STD), persistent=False)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen: batch statistics are folded into its convolutions
        return self

    def backbone_input(self, x):
        """Standardised (B, C, H, W) -> RGB (B, 3, S, S) normalised as the weights expect."""
        shape = (1, -1, 1, 1)
        x = x * self.input_std.view(shape) + self.input_mean.view(shape)  # pixel values
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
        x = (x - self.backbone_mean.view(shape)) / self.backbone_std.view(shape)
        return x.contiguous(memory_format=torch.channels_last)

    def front_maps(self, x):
        """Frozen maps of the stages read before the tail and of the stage the tail starts
        from, ``{stage: (B, C_s, H_s, W_s)}`` in the input's dtype, without gradients."""
        wanted = [s for s in self.stages if s < TAIL_FROM]
        if self.tail_stages:
            wanted = sorted(set(wanted) | {TAIL_FROM - 1})
        maps = frozen_stage_maps(self.backbone, x, wanted, prepare=self.backbone_input)
        return {s: m.to(x.dtype) for s, m in zip(wanted, maps)}

    def tail_maps(self, boundary):
        """Maps of the tail stages, ``{stage: map}``, from the map of stage 5, (B, 112, h, w);
        with gradients only while the tail trains (frozen, it runs as the stages before it)."""
        trains = any(p.requires_grad for p in self.tail.parameters())
        frozen = not trains and native_bfloat16(boundary.device)
        maps, start, dtype = {}, 0, boundary.dtype
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()), \
                torch.autocast(boundary.device.type, dtype=torch.bfloat16, enabled=frozen):
            for stage, end in zip(self.tail_stages, self.tail_ends):
                for block in self.tail[start:end]:
                    boundary = block(boundary)  # (B, C_s, h_s, w_s)
                maps[stage], start = boundary.to(dtype), end
        return maps

    def backbone_maps(self, x):
        """Backbone maps of the stages read, (B, C_s, H_s, W_s), before local averaging."""
        maps = self.front_maps(x)
        if self.tail_stages:
            maps.update(self.tail_maps(maps[TAIL_FROM - 1]))
        return [maps[s] for s in self.stages]

    def forward(self, x):
        maps = self.backbone_maps(x)
        scales = [local_average(m, self.neighbourhood) for m in maps]
        scales = [m + adapter(m) for m, adapter in zip(scales, self.adapters)]
        if self.image_scale:
            scales.append(maps[-1].mean(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        return scales  # (B, C_s, H_s, W_s) per scale
