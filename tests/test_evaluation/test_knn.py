"""The weighted k-NN against an element-wise computation of its formula."""
import math

import pytest
import torch

from bcssl_mm.evaluation.knn import knn_classify, knn_neighbours, knn_predict

T = 0.07


def loop_neighbours(bank, queries):
    """Every bank index of each query in (similarity desc, index asc) order,
    with the similarities, computed one pair at a time."""

    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    bank = [unit(v) for v in bank.double().tolist()]
    out = []
    for q in queries.double().tolist():
        q = unit(q)
        sims = [sum(a * b for a, b in zip(q, b)) for b in bank]
        order = sorted(range(len(bank)), key=lambda i: (-sims[i], i))
        out.append([(sims[i], i) for i in order])
    return out


def loop_predict(bank, labels, queries, num_classes, k):
    """Classes ranked by summed exp(sim / T) of the k nearest, then by class
    index; also the scores."""
    preds = []
    for neighbours in loop_neighbours(bank, queries):
        scores = [0.] * num_classes
        for sim, i in neighbours[:k]:
            scores[int(labels[i])] += math.exp(sim / T)
        order = sorted(range(num_classes), key=lambda c: (-scores[c], c))
        preds.append((order[:min(5, num_classes)], scores))
    return preds


def quantised(n, dim=8, seed=0):
    """Rows with 4 entries of +-1 and zeros elsewhere: normalised entries
    are +-0.5, so every similarity is an exact multiple of 0.25 and ties
    are everywhere."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, dim)
    for row in out:
        cols = torch.randperm(dim, generator=g)[:4]
        row[cols] = torch.randint(0, 2, (4, ), generator=g).float() * 2 - 1
    return out


def test_formula_every_k_top5_few_queries():
    g = torch.Generator().manual_seed(0)
    num_classes, ks = 7, (1, 5, 10, 20, 60)
    bank = torch.randn(150, 16, generator=g)
    labels = torch.randint(0, num_classes, (150, ), generator=g)
    # 37 queries (official DINO's chunking needs 100), near the bank items
    queries = bank[:37] + 0.8 * torch.randn(37, 16, generator=g)
    qlabels = labels[:37].clone()
    qlabels[::4] = (qlabels[::4] + 1) % num_classes  # some misses
    preds = knn_predict(bank, labels, queries, num_classes, ks, T)
    metrics = knn_classify(bank, labels, queries, qlabels, num_classes, ks, T)
    assert sorted(preds) == sorted(ks)
    for k in ks:
        ref = loop_predict(bank, labels, queries, num_classes, k)
        assert preds[k].tolist() == [r[0] for r in ref], k
        top1 = 100 * sum(r[0][0] == y for r, y in zip(ref, qlabels)) / 37
        top5 = 100 * sum(y in r[0] for r, y in zip(ref, qlabels)) / 37
        assert metrics[f'top1_k{k}'] == pytest.approx(top1)
        assert metrics[f'top5_k{k}'] == pytest.approx(top5)
        assert 0 < top5 < 100 and top1 < top5  # the case is not trivial


def test_similarity_ties_go_to_lower_bank_index():
    bank, queries = quantised(60, seed=1), quantised(9, seed=2)
    ref = loop_neighbours(bank, queries)
    for k in (1, 3, 7, 20, 60):
        sim, idx = knn_neighbours(bank, queries, k)
        assert idx.tolist() == [[i for _, i in r[:k]] for r in ref]
        assert sim.double().tolist() == [[s for s, _ in r[:k]] for r in ref]
    # ties across the 7th place are really there (the test is not vacuous)
    kth = [r[6][0] for r in ref]
    assert any(r[7][0] == s for r, s in zip(ref, kth))


def test_vote_ties_go_to_lower_class_index():
    # one query; bank items at the same similarity in classes 2 and 1, then
    # a farther item of class 0: k=2 ties classes 1 and 2
    bank = torch.tensor([[1., 1.], [1., 1.], [1., 0.]])
    labels = torch.tensor([2, 1, 0])
    queries = torch.tensor([[1., 1.]])
    preds = knn_predict(bank, labels, queries, 4, ks=(1, 2, 3))
    assert preds[1].tolist() == [[2, 0, 1, 3]]  # bank index 0 is nearer
    assert preds[2].tolist() == [[1, 2, 0, 3]]  # tie 1 vs 2: class 1
    assert preds[3].tolist() == [[1, 2, 0, 3]]
    # top-min(5, C): 4 classes -> every label is a top-5 hit
    m = knn_classify(bank, labels, queries, torch.tensor([3]), 4, ks=(2, ))
    assert (m['top1_k2'], m['top5_k2']) == (0., 100.)


@pytest.mark.parametrize('kind', ['random', 'tied'])
@pytest.mark.parametrize('query_chunk,bank_chunk', [(1, 1), (3, 7), (5, 13),
                                                    (16, 40), (1000, 1000)])
def test_chunked_equals_unchunked(query_chunk, bank_chunk, kind):
    # 'tied': exact similarities (multiples of 0.25) with ties everywhere;
    # with real-valued features, blocks of other shapes may round a
    # similarity differently in the last bit (BLAS), so only the exact case
    # can test tie order across chunkings
    g = torch.Generator().manual_seed(3)
    if kind == 'random':
        bank, queries = torch.randn(100, 6, generator=g), torch.randn(17, 6)
    else:
        bank, queries = quantised(100, 6), quantised(17, 6, seed=4)
    labels = torch.randint(0, 5, (100, ), generator=g)
    ks = (1, 10, 20, 100)
    full = knn_predict(bank, labels, queries, 5, ks)
    sim, idx = knn_neighbours(bank, queries, 100)
    chunked = knn_predict(
        bank,
        labels,
        queries,
        5,
        ks,
        query_chunk=query_chunk,
        bank_chunk=bank_chunk)
    c_sim, c_idx = knn_neighbours(bank, queries, 100, query_chunk, bank_chunk)
    assert torch.equal(idx, c_idx)
    torch.testing.assert_close(sim, c_sim)
    for k in full:
        assert torch.equal(full[k], chunked[k]), k


def test_k_larger_than_bank_is_an_error():
    bank, labels = torch.randn(5, 4), torch.zeros(5, dtype=torch.long)
    with pytest.raises(
            ValueError, match=r'k = 10 is larger than the bank '
            r'\(5 items\)'):
        knn_classify(
            bank,
            labels,
            torch.randn(2, 4),
            torch.zeros(2, dtype=torch.long),
            1,
            ks=(1, 10))
