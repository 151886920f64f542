"""Named MCADDetector configurations for the benchmark: a CPU preset sized for 2 cores and a
GPU preset sized for one modern GPU, each for images and for tabular data."""

# Images: training a CNN from scratch does not converge in minutes on 2 cores, so the CPU preset
# puts the memories on a frozen ImageNet EfficientNet-Lite0 (adapters on its last two stages, 96
# px input, where its deep stages still have 3x3 maps). The GPU preset keeps that backbone at a
# higher resolution with longer training; "resnet" trains from scratch as in the paper.
_PRESETS = {
    ("cpu", "image"): dict(backbone="efficientnet-lite0", input_size=96, n_scales=2,
                           memory_size=256, stage1_epochs=2, stage2_epochs=1, batch_size=256,
                           learning_rate=1e-3),
    ("gpu", "image"): dict(backbone="efficientnet-lite0", input_size=224, n_scales=3,
                           memory_size=512, stage1_epochs=10, stage2_epochs=3, batch_size=256,
                           learning_rate=1e-3),
    ("cpu", "tabular"): dict(width=16, n_scales=3, memory_size=32, stage1_epochs=20,
                             stage2_epochs=5, batch_size=128, learning_rate=1e-3),
    ("gpu", "tabular"): dict(width=32, n_scales=3, memory_size=64, stage1_epochs=100,
                             stage2_epochs=20, batch_size=256, learning_rate=1e-3),
}


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
