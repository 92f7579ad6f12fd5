"""Weighted k-NN classification of features, the DINO protocol.

Paper: "Emerging Properties in Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.14294), official ``eval_knn.py``; the BC-SSL
paper (https://arxiv.org/abs/2312.05695) reports k = 20 (docs/recipes.md §3).

Features are L2-normalised; the similarity of a query to a bank item is
their dot product (cosine). The k nearest bank items of a query vote for
their class with weight ``exp(sim / T)``; the classes are ranked by their
summed weight. Top-1 and top-5 accuracies are in percent.

Memory is bounded by the chunk sizes, not by the bank: the similarity matrix
is computed one (query chunk x bank chunk) block at a time, and each query
keeps a running list of its ``max(ks)`` nearest items, merged block by block.
Extra memory is about ``4 * (query_chunk * bank_chunk + bank_chunk * C +
Q * C) + 12 * Q * max(ks)`` bytes: ~0.8 GB for 50k queries of 768 dims
against any bank with the default chunks. All ks are answered from one
pass, as official DINO does.

Ties are broken deterministically, for any chunk sizes and number of
processes:

- neighbours: bank items are ordered by similarity, descending, then by
  bank index, ascending; the k nearest are the first k in that order (of
  several items tied at the k-th place, those earlier in the bank win);
- votes: classes are ranked by summed weight, descending, then by class
  index, ascending (a vote tie for the top-1 class goes to the lower class
  index).

Ties are between similarities as computed in float32. Exactly equal ones
(duplicated bank items, quantised features) resolve as above whatever the
chunking; the matrix product may round two mathematically equal
similarities of real-valued features differently in the last bit,
depending on the block shapes, and then the rounding decides.

Top-5 with fewer than 5 classes is top-min(5, C): the label must be among
the min(5, C) best-ranked classes (with C <= 5 every prediction counts as a
top-5 hit). Classes without any neighbour have score 0 and rank after all
voted classes, by class index.
"""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F

DEFAULT_KS = (10, 20, 100, 200)
TEMPERATURE = 0.07


def _check_inputs(bank: torch.Tensor, bank_labels: torch.Tensor,
                  queries: torch.Tensor, ks: Sequence[int]) -> None:
    if bank.dim() != 2 or queries.dim() != 2 or \
            bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f'k-NN: bank {tuple(bank.shape)} and queries '
            f'{tuple(queries.shape)} must be (N, C) and (Q, C) with the same '
            'C')
    if bank_labels.shape != (bank.shape[0], ):
        raise ValueError(f'k-NN: bank labels {tuple(bank_labels.shape)} do '
                         f'not match the bank of {bank.shape[0]} rows')
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f'k-NN: every k must be >= 1, got {list(ks)}')
    if max(ks) > bank.shape[0]:
        raise ValueError(f'k-NN: k = {max(ks)} is larger than the bank '
                         f'({bank.shape[0]} items); choose k <= '
                         f'{bank.shape[0]} (--nb-knn)')


def _stable_order(values: torch.Tensor,
                  index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by value descending, then by index ascending."""
    index, perm = index.sort(dim=1, stable=True)
    values = values.gather(1, perm)
    values, perm = values.sort(dim=1, descending=True, stable=True)
    return values, index.gather(1, perm)


def _block_topk(sim: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The k first columns of each row of ``sim`` in (value descending,
    column ascending) order.

    ``torch.topk`` alone picks arbitrarily among values tied at the k-th
    place; such rows (the k-th and (k+1)-th values equal) are re-done with a
    stable sort.
    """
    if k >= sim.shape[1]:
        return sim.sort(dim=1, descending=True, stable=True)
    values, index = sim.topk(k + 1, dim=1)  # (Qc, k + 1), sorted
    ambiguous = values[:, k - 1] == values[:, k]
    values, index = values[:, :k], index[:, :k]
    if ambiguous.any():
        rows = ambiguous.nonzero().squeeze(1)
        v, i = sim[rows].sort(dim=1, descending=True, stable=True)
        values[rows], index[rows] = v[:, :k], i[:, :k]
    return values, index


@torch.no_grad()
def knn_neighbours(bank: torch.Tensor,
                   queries: torch.Tensor,
                   k: int,
                   query_chunk: int = 1024,
                   bank_chunk: int = 65536
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities and bank indices of the k nearest bank items.

    Args:
        bank (Tensor): (N, C) bank features, not necessarily normalised.
        queries (Tensor): (Q, C) query features, on the same device.
        k (int): Neighbours per query, at most N.
        query_chunk (int): Queries per block. Defaults to 1024.
        bank_chunk (int): Bank items per block. Defaults to 65536.

    Returns:
        tuple[Tensor, Tensor]: (Q, k) similarities, descending, and (Q, k)
        bank indices, in the order defined in the module docstring.
    """
    if k > bank.shape[0]:
        raise ValueError(f'k-NN: k = {k} is larger than the bank '
                         f'({bank.shape[0]} items)')
    queries = F.normalize(queries.float(), dim=1)  # (Q, C)
    num_q = queries.shape[0]
    best_sim = queries.new_empty((num_q, 0))
    best_idx = torch.empty((num_q, 0), dtype=torch.long, device=bank.device)
    for b0 in range(0, bank.shape[0], bank_chunk):
        block = F.normalize(bank[b0:b0 + bank_chunk].float(), dim=1)
        kb = min(k, block.shape[0])
        sims, idxs = [], []
        for q0 in range(0, num_q, query_chunk):
            sim = queries[q0:q0 + query_chunk] @ block.T  # (Qc, Bc)
            s, i = _block_topk(sim, kb)
            sims.append(s)
            idxs.append(i + b0)
        # earlier blocks first: a stable merge keeps lower indices first
        s, i = _stable_order(
            torch.cat([best_sim, torch.cat(sims)], dim=1),
            torch.cat([best_idx, torch.cat(idxs)], dim=1))
        best_sim, best_idx = s[:, :k], i[:, :k]
    return best_sim, best_idx


@torch.no_grad()
def knn_predict(bank: torch.Tensor,
                bank_labels: torch.Tensor,
                queries: torch.Tensor,
                num_classes: int,
                ks: Sequence[int] = DEFAULT_KS,
                temperature: float = TEMPERATURE,
                query_chunk: int = 1024,
                bank_chunk: int = 65536) -> Dict[int, torch.Tensor]:
    """Ranked class predictions of every query, for every k.

    Args:
        bank (Tensor): (N, C) bank features (raw; normalised here).
        bank_labels (Tensor): (N, ) int class indices of the bank.
        queries (Tensor): (Q, C) query features.
        num_classes (int): Number of classes.
        ks (Sequence[int]): Numbers of neighbours. Defaults to
            (10, 20, 100, 200).
        temperature (float): T of the weights ``exp(sim / T)``. Defaults to
            0.07.
        query_chunk (int): Queries per block. Defaults to 1024.
        bank_chunk (int): Bank items per block. Defaults to 65536.

    Returns:
        dict[int, Tensor]: k -> (Q, min(5, num_classes)) class indices, best
        first.
    """
    _check_inputs(bank, bank_labels, queries, ks)
    ks = sorted({int(k) for k in ks})
    sim, idx = knn_neighbours(bank, queries, ks[-1], query_chunk, bank_chunk)
    labels = bank_labels.to(idx.device).long()
    top = min(5, num_classes)
    preds: Dict[int, list] = {k: [] for k in ks}
    for q0 in range(0, sim.shape[0], query_chunk):
        weights = (sim[q0:q0 + query_chunk] / temperature).exp()  # (Qc, K)
        votes = labels[idx[q0:q0 + query_chunk]]  # (Qc, K)
        scores = weights.new_zeros((weights.shape[0], num_classes))
        prev = 0
        for k in ks:  # add the neighbours prev..k-1 to the votes of prev
            scores.scatter_add_(1, votes[:, prev:k], weights[:, prev:k])
            prev = k
            ranked = scores.sort(dim=1, descending=True, stable=True)[1]
            preds[k].append(ranked[:, :top])
    return {k: torch.cat(p) for k, p in preds.items()}


def knn_classify(bank: torch.Tensor,
                 bank_labels: torch.Tensor,
                 queries: torch.Tensor,
                 query_labels: torch.Tensor,
                 num_classes: int,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = TEMPERATURE,
                 query_chunk: int = 1024,
                 bank_chunk: int = 65536) -> Dict[str, float]:
    """Top-1 and top-5 accuracy (%) of the weighted k-NN, for every k.

    Arguments as :func:`knn_predict`, plus ``query_labels`` (Q, ).

    Returns:
        dict[str, float]: ``top1_k{K}`` and ``top5_k{K}`` for every K.
    """
    if query_labels.shape != (queries.shape[0], ):
        raise ValueError(f'k-NN: query labels {tuple(query_labels.shape)} '
                         f'do not match {queries.shape[0]} queries')
    if queries.shape[0] == 0:
        raise ValueError('k-NN: no queries')
    preds = knn_predict(bank, bank_labels, queries, num_classes, ks,
                        temperature, query_chunk, bank_chunk)
    metrics = {}
    for k, ranked in preds.items():
        hit = ranked == query_labels.to(ranked.device).long()[:, None]
        metrics[f'top1_k{k}'] = 100. * hit[:, 0].float().mean().item()
        metrics[f'top5_k{k}'] = 100. * hit.any(dim=1).float().mean().item()
    return metrics
