"""What MCADDetector's "auto" parameters mean, and the benchmark's named presets.

``MCADDetector()`` takes the configuration the benchmark measured on 2 CPU cores: for images
an ImageNet EfficientNet-Lite0 at 160 px (96 px for images under 32 px a side) whose last
two stages are adapted to the normal class (training a CNN from scratch does not converge in
minutes on 2 cores) and read by kNN banks of the training positions (which scored above
learned prototypes on these features), for tabular data a small MLP whose five scales are the
standardised row itself, read by a kNN bank (the k-th nearest training row, k at 3 % of the
rows, at least 5) and by a memory of prototypes, and three learned layers (benchmarked on
PyOD's ODDS sets and ADBench's Classical group, docs/benchmarks.md). ``backbone="resnet"`` is the
paper's from-scratch path, with its own defaults. The "cpu" preset is these defaults; the
"gpu" preset trains longer at a higher resolution on images, and is the "cpu" one on tables.
"""

from .nn.efficientnet import BACKBONE_VARIANTS
from .nn.pretrained_encoder import TAIL_FROM

AUTO = "auto"
N_PRETRAINED_STAGES = 7  # EfficientNet-Lite's stages (skmcad.nn.pretrained_encoder)
# The ImageNet-pretrained backbones: the same stages and channels, Lite1 deeper
PRETRAINED_BACKBONES = tuple(BACKBONE_VARIANTS)
# optimiser steps of the adaptation of the backbone's last stages (skmcad.stage1.adapt_backbone):
# enough to move the ImageNet features towards the normal class, few enough not to fit its
# training images: on CIFAR-10 at 160 px, 60 steps scored above 100 in a fifth less fit time
# (docs/benchmarks.md, "How long to adapt")
ADAPT_STEPS = 60
AUTO_BACKBONE = {"image": "efficientnet-lite0", "tabular": "mlp"}
# The pretrained backbone reads images of at least LARGE_IMAGE_SIDE px a side at
# LARGE_INPUT_SIZE px: on CIFAR-10's 32-px images 160 px scored about 0.02 AUROC above 96 px,
# for MCAD and for kNN on the frozen features alike, at 2.8 times the compute
# (docs/benchmarks.md). Smaller images (8-px digits, 28-px MNIST) keep the 96 px of
# AUTO_VALUES, measured on them.
LARGE_IMAGE_SIDE = 32
LARGE_INPUT_SIZE = 160

# The values "auto" takes for the pretrained backbones, Lite0 and Lite1 alike.
# use_memory=False: on the adapted backbone's features a kNN bank of the training positions
# scored above the learned prototypes (the ablation in docs/benchmarks.md); stage1_epochs:
# with those banks and no labelled anomalies "auto" is 0 (see resolve_params)
_PRETRAINED_AUTO = dict(memory_size=256, n_scales=2, width=16, input_size=96, stage1_epochs=2,
                        stage2_epochs=1, batch_size=256, use_memory=False, stages=(6, 7),
                        neighbourhood=1, adapt_steps=ADAPT_STEPS)
# The values "auto" takes, per encoder.
AUTO_VALUES = {
    **{backbone: dict(_PRETRAINED_AUTO) for backbone in PRETRAINED_BACKBONES},
    "resnet": dict(memory_size=64, n_scales=3, width=16, input_size=None, stage1_epochs=50,
                   stage2_epochs=10, batch_size=128, use_memory=True),
    # tables: the standardised row read by a kNN bank and by a memory of prototypes, then
    # three MLP stages; few epochs (5 + 1) keep a fit near a second on 2 cores
    "mlp": dict(memory_size=32, n_scales=5, width=16, input_size=None, stage1_epochs=5,
                stage2_epochs=1, batch_size=128, use_memory=True),
}

# The values of AUTO_VALUES that depend on the data or the other parameters, in words (for
# the user guide's table): resolve_params applies them.
AUTO_RULES = {
    **{(backbone, "input_size"):
       f"{LARGE_INPUT_SIZE} for images of {LARGE_IMAGE_SIDE} px a side or more, else "
       f"{AUTO_VALUES[backbone]['input_size']}" for backbone in PRETRAINED_BACKBONES},
    **{(backbone, "stage1_epochs"):
       f"0 with kNN banks in the one-class setting, else "
       f"{AUTO_VALUES[backbone]['stage1_epochs']}" for backbone in PRETRAINED_BACKBONES},
}

_PRESETS = {
    # the scales as stages, so that a --mcad-params "stages" replaces them
    # input_size and stage1_epochs left "auto": they depend on the images and the setting
    ("cpu", "image"): dict(backbone=AUTO_BACKBONE["image"], **{
        k: v for k, v in AUTO_VALUES["efficientnet-lite0"].items()
        if k not in ("n_scales", "input_size", "stage1_epochs")}),
    ("gpu", "image"): dict(backbone="efficientnet-lite0", input_size=224, stages=(5, 6, 7),
                           memory_size=512, stage1_epochs=10, stage2_epochs=3, batch_size=256),
    ("cpu", "tabular"): dict(AUTO_VALUES["mlp"]),
    # tables are small: the CPU values (a 20-epoch stage 1 scored lower on ODDS than 5)
    ("gpu", "tabular"): dict(AUTO_VALUES["mlp"]),
}


def auto_input_size(image_side):
    """The side, in pixels, ``input_size="auto"`` resizes images of ``image_side`` px (the
    shorter one; None when unknown) to for the pretrained backbone.

    >>> auto_input_size(32), auto_input_size(8)
    (160, 96)
    """
    if image_side is not None and image_side >= LARGE_IMAGE_SIDE:
        return LARGE_INPUT_SIZE
    return AUTO_VALUES["efficientnet-lite0"]["input_size"]


def resolve_params(params, kind, image_side=None):
    """The concrete encoder and training sizes for input of ``kind``.

    Parameters
    ----------
    params : dict
        ``MCADDetector.get_params()``; any of ``backbone`` and the keys of
        :data:`AUTO_VALUES` may be "auto".
    kind : {"image", "tabular"}
    image_side : int, optional
        Shorter side of the images, in pixels: with the pretrained backbone
        ``input_size="auto"`` is :func:`auto_input_size` of it.

    Returns
    -------
    dict
        ``backbone`` and every key of :data:`AUTO_VALUES`, none of them "auto".

    Examples
    --------
    >>> resolve_params({"backbone": "auto", "memory_size": 8, "n_scales": "auto",
    ...                 "width": "auto", "input_size": "auto", "stage1_epochs": "auto",
    ...                 "stage2_epochs": "auto", "batch_size": "auto"}, "tabular")["n_scales"]
    5
    """
    backbone = AUTO_BACKBONE[kind] if params["backbone"] == AUTO else params["backbone"]
    values = AUTO_VALUES[backbone]
    resolved = {name: value if params.get(name, AUTO) == AUTO else params[name]
                for name, value in values.items()}
    resolved["backbone"] = backbone
    resolved.update(_memory(params, values))
    stages = params.get("stages", AUTO)
    if backbone not in PRETRAINED_BACKBONES:
        # "off" (adapt_steps=0, image_scale=False) holds for every backbone, so that one set
        # of parameters can fit both tables and images
        for name, what, allowed in [
                ("neighbourhood", "averages the pretrained backbone's features", (AUTO,)),
                ("adapt_steps", "fine-tunes the pretrained backbone", (AUTO, 0)),
                ("image_scale", "pools the pretrained backbone's deepest stage", (AUTO, False))]:
            if params.get(name, AUTO) not in allowed:
                takes = " or ".join(repr(value) for value in allowed)
                raise ValueError(f"{name} {what}; backbone={backbone!r} takes {name}={takes}.")
        if stages != AUTO:
            raise ValueError(f"stages={stages!r} picks stages of the pretrained backbone; "
                             f"backbone={backbone!r} has none to pick: leave stages='auto' "
                             f"and set n_scales.")
        return resolved
    if stages == AUTO and params["n_scales"] != AUTO:  # the last n_scales stages
        if int(params["n_scales"]) > N_PRETRAINED_STAGES:
            raise ValueError(f"n_scales={params['n_scales']} exceeds the "
                             f"{N_PRETRAINED_STAGES} stages of the {backbone} backbone.")
        stages = range(N_PRETRAINED_STAGES - int(params["n_scales"]) + 1,
                       N_PRETRAINED_STAGES + 1)
    if params.get("input_size", AUTO) == AUTO:
        resolved["input_size"] = auto_input_size(image_side)
    if (params.get("stage1_epochs", AUTO) == AUTO and not resolved["use_memory"]
            and params.get("setting", "one-class") == "one-class"):
        # the adapted features read by kNN banks: stage 1 would only train the adapters,
        # which scored within 0.002 AUROC of untrained ones (two CIFAR-10 classes at 160
        # px) for 30-60 s of a 5-minute fit
        resolved["stage1_epochs"] = 0
    resolved["stages"] = _checked_stages(values["stages"] if stages == AUTO else stages,
                                         params["n_scales"])
    resolved["n_scales"] = len(resolved["stages"])
    image_scale = params.get("image_scale", AUTO)  # "auto": where the adapted tail is read
    resolved["image_scale"] = bool(resolved["stages"][-1] >= TAIL_FROM if image_scale == AUTO
                                   else image_scale)
    return resolved


def _memory(params, values):
    """``use_memory`` and ``memory``: a memory the user names is used; otherwise the
    backbone's default decides (the learned prototypes, "hopfield", or kNN banks, when
    ``memory`` is None)."""
    memory, use_memory = params.get("memory", AUTO), params.get("use_memory", AUTO)
    if isinstance(use_memory, str) and use_memory == AUTO:
        use_memory = values["use_memory"] if memory == AUTO else True
    if not use_memory:
        return {"use_memory": False, "memory": None}
    return {"use_memory": True, "memory": "hopfield" if memory == AUTO else memory}


def _checked_stages(stages, n_scales):
    """``stages`` as a sorted tuple of distinct stage numbers of the pretrained backbone."""
    try:
        picked = tuple(sorted({int(s) for s in stages}))
    except (TypeError, ValueError):
        picked = ()
    if not picked or len(picked) != len(list(stages)) or not all(
            1 <= s <= N_PRETRAINED_STAGES for s in picked):
        raise ValueError(f"stages must be distinct stage numbers from 1 to "
                         f"{N_PRETRAINED_STAGES}, e.g. (3, 5, 7); got {stages!r}.")
    if n_scales != AUTO and int(n_scales) != len(picked):
        raise ValueError(f"n_scales={n_scales} does not match stages={stages!r} "
                         f"({len(picked)} stages); leave n_scales='auto'.")
    return picked


def preset_params(preset, kind):
    """MCADDetector keyword arguments of a preset.

    Parameters
    ----------
    preset : {"cpu", "gpu"}
    kind : {"image", "tabular"}

    Returns
    -------
    dict
        A fresh copy: callers may change it.
    """
    try:
        return dict(_PRESETS[(preset, kind)])
    except KeyError:
        raise ValueError(f"No preset {preset!r} for {kind} data; presets are 'cpu' and 'gpu', "
                         f"for 'image' and 'tabular' data.") from None
