"""The "auto" parameters take the configuration the benchmark measures (the CPU presets)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.presets import AUTO_VALUES, preset_params, resolve_params

AUTO_KEYS = sorted(AUTO_VALUES["mlp"]) + ["backbone", "memory"]


def _resolved(kind, **params):
    return resolve_params(MCADDetector(**params).get_params(), kind)


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_defaults_are_the_cpu_preset(kind):
    preset = preset_params("cpu", kind)
    resolved = _resolved(kind)
    assert {key: resolved[key] for key in preset} == preset


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
    assert det.config_ == {**AUTO_VALUES["efficientnet-lite0"], "backbone": "efficientnet-lite0",
                           "image_scale": True, "memory": None}
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
