"""The ablations the benchmark runs: no memory (a kNN search instead) and untrained memory."""

import io

import numpy as np
import torch
import torch.nn.functional as F

from skmcad import MCADDetector
from skmcad.nn.neighbour_memory import (NearestNeighbourMemory, forget_owners, leave_one_out,
                                         own_vectors)


def test_no_memory_deviation_is_the_nearest_training_feature_distance(digits, tiny_params):
    images, y = digits
    det = MCADDetector(**tiny_params, use_memory=False).fit(images[:300][y[:300] == 3])
    network = det.network_
    assert all(isinstance(m, NearestNeighbourMemory) for m in network.memories)
    assert [m.n_neighbours for m in network.memories] == [1] * det.config_["n_scales"] + [5]
    x = torch.from_numpy(det.standardizer_.transform(
        det.layout_.to_batch(images[400:404]))).float()
    with torch.no_grad():
        maps = network.deviation_maps(x)
        for d, f, memory in zip(maps, network.features(x), network.memories):
            queries = F.normalize(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]), dim=1)
            bank = F.normalize(memory.bank, dim=1)
            # every scale's nearest feature; the image scale's 5th nearest training image
            k = min(memory.n_neighbours, len(bank))
            closeness = (queries @ bank.T).topk(k, dim=1).values[:, -1]
            nearest = (2 - 2 * closeness).reshape(d.shape)
            torch.testing.assert_close(d, nearest, atol=1e-4, rtol=1e-4)


def test_no_memory_detector_saves_and_loads_its_banks(tiny_params):
    X = np.random.default_rng(0).normal(size=(50, 4))
    det = MCADDetector(**tiny_params, use_memory=False).fit(X)
    assert det.network_.memories[0].bank.shape == (45, 16)  # the 90 % stage-1 part, width 16
    buffer = io.BytesIO()
    det.save(buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(MCADDetector.load(buffer).decision_function(X),
                                  det.decision_function(X))


def test_untrained_memory_holds_training_features(digits, tiny_params):
    images, y = digits
    normal = images[:300][y[:300] == 5]
    det = MCADDetector(**{**tiny_params, "stage1_epochs": 0, "use_memory": True}).fit(normal)
    assert det.history_["stage1"] == []
    x = torch.from_numpy(det.standardizer_.transform(det.layout_.to_batch(normal))).float()
    scale = max(i for i, kind in enumerate(det.network_.scale_kinds) if kind == "learned")
    with torch.no_grad():
        deepest = det.network_.features(x)[scale]  # adapters untrained: the backbone's features
    vectors = deepest.permute(0, 2, 3, 1).reshape(-1, deepest.shape[1])
    for prototype in det.network_.memories[scale].prototypes:
        distances = torch.cdist(prototype[None], vectors,
                                compute_mode="donot_use_mm_for_euclid_dist")
        assert distances.min() < 1e-4


def test_training_samples_are_not_their_own_neighbours_while_left_out():
    torch.manual_seed(0)
    features = torch.randn(6, 4, 1, 1)  # six samples, one position each
    memory = NearestNeighbourMemory(4, "euclidean")
    memory.initialize_from(features, owners=torch.arange(6))
    network = torch.nn.Module()
    network.memories = torch.nn.ModuleList([memory])
    queries = features[:, :, 0, 0]
    assert torch.equal(memory.nearest(queries), torch.arange(6))  # each finds itself
    with leave_one_out(network, torch.arange(6)):
        retrieved, _ = memory(features)
    others = torch.cdist(queries, queries).fill_diagonal_(float("inf")).argmin(1)
    torch.testing.assert_close(retrieved[:, :, 0, 0], queries[others])
    forget_owners(network)
    assert torch.equal(memory(features)[0], features)  # outside the block: itself again


def test_own_vectors_are_those_of_each_querys_sample():
    g = torch.Generator().manual_seed(0)
    bank_owners = torch.randint(0, 30, (200,), generator=g)  # samples 0-29, some absent
    query_owners = torch.cat([torch.randint(-1, 35, (50,), generator=g), bank_owners[:3]])
    rows, columns = own_vectors(bank_owners, query_owners)
    found = torch.zeros(len(query_owners), len(bank_owners), dtype=torch.bool)
    found[rows, columns] = True
    assert len(rows) == int(found.sum())  # each pair once
    assert torch.equal(found, query_owners[:, None] == bank_owners[None])
