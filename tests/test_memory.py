import pytest
import torch
import torch.nn.functional as F

from skmcad.memory import HopfieldMemory, MeanMemory


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
                weights = torch.softmax(5.0 * F.normalize(prototypes, dim=1) @ F.normalize(q, dim=0), 0)
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


def test_mean_memory_reads_the_training_centre():
    memory = MeanMemory(dim=3)
    features = torch.randn(4, 3, 2, 2)
    memory.initialize_from(features)
    retrieved, _ = memory(torch.randn(1, 3, 2, 2))
    assert torch.allclose(retrieved[0, :, 1, 1], features.mean(dim=(0, 2, 3)), atol=1e-6)
