import pytest
import torch
import torch.nn.functional as F

from skmcad.nn.hopfield_memory import HopfieldMemory
from skmcad.nn.neighbour_memory import NearestNeighbourMemory


def test_read_shapes_and_attention_rows_sum_to_one():
    memory = HopfieldMemory(n_prototypes=5, dim=6, beta=10.0)
    features = torch.randn(3, 6, 4, 2)
    retrieved, attention = memory(features)
    assert retrieved.shape == (3, 6, 4, 2)
    assert attention.shape == (3 * 4 * 2, 5)
    assert torch.allclose(attention.sum(dim=1), torch.ones(24))


def test_read_matches_the_hopfield_formula_at_each_position():
    torch.manual_seed(0)
    memory = HopfieldMemory(n_prototypes=4, dim=3, beta=5.0)
    features = torch.randn(2, 3, 2, 2)
    retrieved, _ = memory(features)
    prototypes = memory.prototypes.detach()
    for b in range(2):
        for h in range(2):
            for w in range(2):
                q = features[b, :, h, w]
                similarity = F.normalize(prototypes, dim=1) @ F.normalize(q, dim=0)
                weights = torch.softmax(5.0 * similarity, 0)
                assert torch.allclose(retrieved[b, :, h, w], weights @ prototypes, atol=1e-6)


def test_large_beta_reads_the_nearest_prototype():
    memory = HopfieldMemory(n_prototypes=3, dim=2, beta=1000.0)
    with torch.no_grad():
        memory.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    features = torch.tensor([[0.9, 0.2], [-0.1, 2.0]]).T.reshape(1, 2, 1, 2)
    retrieved, _ = memory(features)
    assert torch.allclose(retrieved[0, :, 0, 0], torch.tensor([1.0, 0.0]), atol=1e-4)
    assert torch.allclose(retrieved[0, :, 0, 1], torch.tensor([0.0, 1.0]), atol=1e-4)


def test_gradients_reach_prototypes_and_features():
    memory = HopfieldMemory(n_prototypes=4, dim=3, beta=2.0)
    features = torch.randn(2, 3, 2, 2, requires_grad=True)
    retrieved, _ = memory(features)
    retrieved.pow(2).sum().backward()
    assert memory.prototypes.grad is not None and memory.prototypes.grad.abs().sum() > 0
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_initialize_from_takes_feature_vectors():
    memory = HopfieldMemory(n_prototypes=4, dim=3, beta=2.0)
    features = torch.randn(2, 3, 2, 2)
    memory.initialize_from(features, torch.Generator().manual_seed(0))
    queries = features.permute(0, 2, 3, 1).reshape(-1, 3)
    for prototype in memory.prototypes.detach():
        assert (queries - prototype).abs().sum(dim=1).min() == pytest.approx(0.0)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbour_memory_reads_the_nearest_training_vector(metric):
    generator = torch.Generator().manual_seed(0)
    memory = NearestNeighbourMemory(dim=3, metric=metric, bank_size=100)
    training = torch.randn(4, 3, 2, 2, generator=generator)
    memory.initialize_from(training, generator)
    bank = training.permute(0, 2, 3, 1).reshape(-1, 3)
    queries = torch.randn(2, 3, 3, 1, generator=generator)
    retrieved, _ = memory(queries)
    for b in range(2):
        for h in range(3):
            q = queries[b, :, h, 0]
            if metric == "cosine":
                best = bank[(F.normalize(bank, dim=1) @ F.normalize(q, dim=0)).argmax()]
            else:
                best = bank[(bank - q).norm(dim=1).argmin()]
            assert torch.equal(retrieved[b, :, h, 0], best)


def test_nearest_neighbour_memory_keeps_a_random_bank_of_its_size_and_reloads_it():
    memory = NearestNeighbourMemory(dim=3, bank_size=5)
    training = torch.randn(4, 3, 2, 2)
    memory.initialize_from(training, torch.Generator().manual_seed(0))
    vectors = training.permute(0, 2, 3, 1).reshape(-1, 3)
    assert memory.bank.shape == (5, 3)
    assert all((vectors == row).all(dim=1).any() for row in memory.bank)
    reloaded = NearestNeighbourMemory(dim=3, bank_size=5)
    reloaded.load_state_dict(memory.state_dict())
    assert torch.equal(reloaded.bank, memory.bank)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbour_memory_reads_the_kth_nearest_vector(metric):
    generator = torch.Generator().manual_seed(1)
    memory = NearestNeighbourMemory(dim=4, metric=metric, n_neighbours=3)
    training = torch.randn(20, 4, 1, 1, generator=generator)
    memory.initialize_from(training, generator)
    bank = training[:, :, 0, 0]
    queries = torch.randn(6, 4, 1, 1, generator=generator)
    retrieved, _ = memory(queries)
    for q, r in zip(queries[:, :, 0, 0], retrieved[:, :, 0, 0]):
        if metric == "cosine":
            order = (F.normalize(bank, dim=1) @ F.normalize(q, dim=0)).argsort(descending=True)
        else:
            order = (bank - q).norm(dim=1).argsort()
        assert torch.equal(r, bank[order[2]])
    # more neighbours than stored vectors: the farthest one
    small = NearestNeighbourMemory(dim=4, metric=metric, n_neighbours=50)
    small.initialize_from(training[:3], generator)
    assert len(small(queries)[0]) == 6
