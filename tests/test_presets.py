"""The "auto" parameters take the configuration the benchmark measures (the CPU presets)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.presets import AUTO_VALUES, auto_input_size, preset_params, resolve_params

AUTO_KEYS = sorted(AUTO_VALUES["mlp"]) + ["backbone", "memory"]


def _resolved(kind, image_side=None, **params):
    return resolve_params(MCADDetector(**params).get_params(), kind, image_side)


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_defaults_are_the_cpu_preset(kind):
    preset = preset_params("cpu", kind)
    resolved = _resolved(kind)
    assert {key: resolved[key] for key in preset} == preset


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "efficientnet-lite1"])
@pytest.mark.parametrize("image_side, input_size", [(None, 96), (8, 96), (32, 160)])
def test_pretrained_backbones_resolve_alike(backbone, image_side, input_size):
    resolved = _resolved("image", image_side, backbone=backbone)
    assert resolved["backbone"] == backbone
    assert resolved["input_size"] == input_size
    assert resolved["stages"] == (6, 7) and resolved["image_scale"] is True


def test_user_values_win_over_auto_and_the_backbone_picks_the_rest():
    resolved = _resolved("image", backbone="resnet", memory_size=7)
    assert resolved["memory_size"] == 7
    assert resolved["stage1_epochs"] == AUTO_VALUES["resnet"]["stage1_epochs"]
    assert resolved["input_size"] is None
    assert sorted(resolved) == sorted(AUTO_KEYS)  # no image_scale: only the pretrained one


def test_default_fit_on_rows_records_its_configuration():
    X = np.random.default_rng(0).normal(size=(60, 4))
    det = MCADDetector(stage1_epochs=1, random_state=0).fit(X)
    assert det.config_ == {**AUTO_VALUES["mlp"], "backbone": "mlp", "memory": "hopfield",
                           "stage1_epochs": 1}


@pytest.mark.parametrize("params, use_memory, memory", [
    ({}, False, None),  # images: a kNN bank per scale
    ({"memory": "grid"}, True, "grid"),  # a memory named is used
    ({"memory": "hopfield"}, True, "hopfield"),
    ({"use_memory": True}, True, "hopfield"),
    ({"backbone": "resnet"}, True, "hopfield"),
])
def test_images_read_knn_banks_unless_a_memory_is_asked_for(params, use_memory, memory):
    resolved = _resolved("image", **params)
    assert (resolved["use_memory"], resolved["memory"]) == (use_memory, memory)


def test_tables_keep_the_learned_memory_unless_switched_off():
    assert _resolved("tabular")["use_memory"] is True
    assert _resolved("tabular", use_memory=False)["use_memory"] is False


def test_default_image_detector_is_the_pretrained_one_and_separates_digits(digits):
    images, y = digits
    normal = images[:600][y[:600] == 0]
    det = MCADDetector(random_state=0).fit(normal)
    # 8-px digits: read at 96 px; kNN banks without labels: no stage-1 epochs
    assert det.config_ == {**AUTO_VALUES["efficientnet-lite0"], "backbone": "efficientnet-lite0",
                           "image_scale": True, "memory": None, "stage1_epochs": 0}
    assert det.network_.encoder.input_size == 96
    test, labels = images[600:1000], (y[600:1000] != 0)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.97


def test_benchmark_scale_parameters_replace_each_other():
    from skmcad.benchmark.detectors import BuildContext, mcad_params

    def params(user, overrides=None):
        ctx = BuildContext(n_features=0, random_state=0, kind="image", preset="cpu",
                           mcad_params=user)
        return mcad_params(ctx, overrides)

    assert params({})["stages"] == (6, 7) and "n_scales" not in params({})
    assert params({"stages": [3, 5, 7]})["stages"] == [3, 5, 7]
    # the one-scale ablation keeps the deepest stage of the run's stages
    assert params({"stages": [3, 5, 7]}, {"n_scales": 1})["stages"] == (7,)
    resnet = params({"backbone": "resnet", "n_scales": 2})
    assert "stages" not in resnet and "neighbourhood" not in resnet


@pytest.mark.parametrize("side, size", [(8, 96), (28, 96), (31, 96), (32, 160), (128, 160),
                                        (None, 96)])
def test_auto_input_size_reads_images_of_32_px_and_more_at_160_px(side, size):
    assert auto_input_size(side) == size
    assert _resolved("image", image_side=side)["input_size"] == size
    assert _resolved("image", image_side=side, input_size=64)["input_size"] == 64
    assert _resolved("image", image_side=side, backbone="resnet")["input_size"] is None


@pytest.mark.parametrize("params, epochs", [
    ({}, 0),  # kNN banks, one-class: only the backbone adapts
    ({"setting": "unbalanced"}, 2),  # labelled anomalies are stage 1's negatives
    ({"memory": "hopfield"}, 2),  # a learned memory is trained
    ({"stage1_epochs": 3}, 3),
])
def test_stage1_epochs_auto_trains_stage1_only_where_it_has_something_to_learn(params, epochs):
    assert _resolved("image", **params)["stage1_epochs"] == epochs
    assert _resolved("tabular", **params)["stage1_epochs"] == params.get("stage1_epochs", 5)


def test_a_fitted_cifar_sized_detector_reads_160_px_and_reloads_so(tmp_path):
    images = np.random.default_rng(0).random((12, 32, 32, 3), dtype=np.float32)
    det = MCADDetector(adapt_steps=0, stage2_epochs=0, random_state=0).fit(images)
    assert det.config_["input_size"] == 160 and det.network_.encoder.input_size == 160
    assert det.anomaly_map(images[:2]).shape == (2, 32, 32)
    det.save(tmp_path / "det.pt")
    loaded = MCADDetector.load(tmp_path / "det.pt")
    assert loaded.network_.encoder.input_size == 160
    np.testing.assert_allclose(loaded.decision_function(images), det.decision_function(images),
                               rtol=1e-5)


def test_benchmark_baselines_read_the_images_at_mcads_auto_size():
    from skmcad.benchmark.detectors import BuildContext, _baseline_params

    def size(side, **user):
        return _baseline_params(BuildContext(n_features=0, random_state=0, kind="image",
                                             mcad_params=user, image_side=side))["input_size"]

    assert (size(32), size(28), size(8)) == (160, 96, 96)
    assert size(32, input_size=128) == 128
    assert size(40, input_size=None) == 40
