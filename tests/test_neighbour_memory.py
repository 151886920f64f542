"""The kNN bank's two-pass search (bfloat16 candidates, float32 order) against the plain one."""

import pytest
import torch
import torch.nn.functional as F

from skmcad.nn import neighbour_memory
from skmcad.nn.neighbour_memory import NearestNeighbourMemory


def _bank(n=600, dim=16, seed=0):
    """Clustered unit vectors: many near neighbours, as image features have."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, dim, generator=generator)
    members = centres[torch.randint(12, (n,), generator=generator)]
    return members + 0.2 * torch.randn(n, dim, generator=generator)


def _memory(vectors, k, owners=None):
    memory = NearestNeighbourMemory(vectors.shape[1], "cosine", bank_size=len(vectors),
                                    n_neighbours=k)
    memory.initialize_from(vectors[:, :, None, None], owners=owners)
    return memory


@pytest.fixture
def two_pass(monkeypatch):
    """Make every bank take the two-pass search, whatever the CPU."""
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", 1)
    monkeypatch.setattr(neighbour_memory, "native_bfloat16", lambda device: True)


def _one_pass(memory, queries, monkeypatch, owners=None):
    """The plain float32 search's answer, whatever the fixtures set."""
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", 10**9)
    return memory.nearest(queries, owners=owners)


@pytest.mark.parametrize("k", [1, 3])
def test_two_pass_search_finds_the_neighbours_of_the_plain_search(two_pass, monkeypatch, k):
    vectors = _bank()
    owners = torch.arange(len(vectors)) // 4  # four vectors per training sample
    memory = _memory(vectors, k, owners)
    queries = _bank(n=200, seed=1)
    query_owners = torch.randint(150, (200,), generator=torch.Generator().manual_seed(2))
    found = memory.nearest(queries)
    found_left_out = memory.nearest(queries, owners=query_owners)
    assert torch.equal(found, _one_pass(memory, queries, monkeypatch))
    assert torch.equal(found_left_out, _one_pass(memory, queries, monkeypatch, query_owners))
    # a left-out query never reads a vector of its own sample
    assert not (owners[found_left_out] == query_owners).any()


def test_two_pass_search_orders_bfloat16_ties_in_float32(two_pass):
    # six stored vectors within 0.001 of a cosine of the query: bfloat16 (steps of 0.004
    # near 1) cannot tell them apart; the nearest is the last one stored
    query = F.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    other = F.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    other = F.normalize(other - (other @ query.T) * query, dim=1)  # orthogonal to the query
    angles = torch.tensor([0.045, 0.044, 0.043, 0.042, 0.041, 0.030])
    near = torch.cos(angles)[:, None] * query + torch.sin(angles)[:, None] * other  # (6, 16)
    far = F.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(2)), dim=1)
    memory = _memory(torch.cat([near, far]), k=1)
    coarse = (query.bfloat16() @ memory.bank[:6].bfloat16().T).float()
    assert torch.unique(coarse).numel() < 6  # ties in bfloat16
    assert memory.nearest(query).item() == 5


def test_two_pass_search_only_for_large_banks_on_native_bfloat16(monkeypatch):
    def fail(*args):
        raise AssertionError("two-pass search used")

    monkeypatch.setattr(neighbour_memory, "_kth_two_pass", fail)
    memory = _memory(_bank(), k=1)
    queries = _bank(n=20, seed=1)
    monkeypatch.setattr(neighbour_memory, "native_bfloat16", lambda device: False)
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", 1)
    memory.nearest(queries)  # no native bfloat16
    monkeypatch.setattr(neighbour_memory, "native_bfloat16", lambda device: True)
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", len(memory.bank) + 1)
    memory.nearest(queries)  # bank too small
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", len(memory.bank))
    with pytest.raises(AssertionError, match="two-pass"):
        memory.nearest(queries)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("passes", ["one", "two"])
def test_search_in_chunks_reads_each_querys_own_neighbour(monkeypatch, metric, passes):
    """Queries searched a few at a time (7 a chunk, the last one shorter) find what a loop
    over the queries finds, each passing over its own sample's vectors."""
    monkeypatch.setattr(neighbour_memory, "CHUNK_ELEMENTS", 7 * 600)
    monkeypatch.setattr(neighbour_memory, "native_bfloat16", lambda device: passes == "two")
    monkeypatch.setattr(neighbour_memory, "TWO_PASS_MIN_BANK", 1)
    vectors = _bank()
    owners = torch.arange(len(vectors)) // 4
    memory = NearestNeighbourMemory(16, metric, bank_size=600, n_neighbours=2)
    memory.initialize_from(vectors[:, :, None, None], owners=owners)
    # each query next to a vector of its own sample, so that passing over it matters
    query_owners = torch.randint(150, (50,), generator=torch.Generator().manual_seed(2))
    queries = vectors[4 * query_owners] + 0.01 * _bank(n=50, seed=1)
    expected = []
    for query, own in zip(queries, query_owners):
        if metric == "cosine":
            distance = 1 - F.normalize(vectors, dim=1) @ F.normalize(query, dim=0)
        else:
            distance = (vectors - query).norm(dim=1)
        distance[owners == own] = torch.inf
        expected.append(distance.argsort()[1])  # the 2nd nearest
    assert torch.equal(memory.nearest(queries, owners=query_owners), torch.stack(expected))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_greedy_bank_keeps_a_covering_subset_with_its_owners(metric):
    """A rare cluster (5 of 600 vectors) is in a greedy bank of 12, and every kept vector
    keeps the name of the sample it came from."""
    generator = torch.Generator().manual_seed(0)
    common = torch.randn(595, 16, generator=generator) * 0.1 + 1.0
    rare = torch.randn(5, 16, generator=generator) * 0.1 - 1.0
    vectors = torch.cat([common, rare])
    owners = torch.arange(600)
    memory = NearestNeighbourMemory(16, metric, bank_size=12, coreset="greedy")
    memory.initialize_from(vectors[:, :, None, None], generator, owners=owners)
    assert len(memory.bank) == 12
    torch.testing.assert_close(memory.bank, vectors[memory.owners])
    assert (memory.owners >= 595).any()  # the rare cluster is covered
    random = NearestNeighbourMemory(16, metric, bank_size=12)
    random.initialize_from(vectors[:, :, None, None], torch.Generator().manual_seed(0))
    assert not (random.bank[:, 0] < 0).any()  # a random 12 of 600 misses it (p = 0.9)


def test_unknown_coreset_is_refused():
    with pytest.raises(ValueError, match="coreset must be"):
        NearestNeighbourMemory(4, coreset="kmeans")
