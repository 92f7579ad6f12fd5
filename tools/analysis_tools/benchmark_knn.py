"""Time and peak memory of the chunked k-NN against a plain dense one.

Random features (fixed seed) stand for a bank and its queries: by default
10k queries against a 100k x 768 bank, 1000 classes, k = 10, 20, 100, 200
in one pass. ``chunked`` is :func:`bcssl_mm.evaluation.knn.knn_classify`
(similarities one (query chunk x bank chunk) block at a time, a running
top-k per query); ``dense`` is one matmul over the whole bank and one
top-k, as official DINO's ``knn_classifier`` does per block of queries.
Both must give the same accuracies (checked). Each is run ``--warmup`` +
``--repeats`` times, in turn; the median time is reported, and the peak
memory (``bcssl_mm.analysis.bench.PeakMemory``: on CPU the increase of the
resident set's high-water mark, an upper bound; on CUDA
``max_memory_allocated``) of its calls above what the inputs hold.

    python tools/analysis_tools/benchmark_knn.py [--bank-size 100000]
        [--queries 10000] [--dim 768] [--classes 1000]
        [--query-chunk 1024] [--bank-chunk 65536] [--repeats 3]
        [--threads N] [--device cuda] [--json out.json]
"""
import argparse
import json
import multiprocessing as mp
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from bcssl_mm.analysis import (PeakMemory, format_table, median_and_spread,
                               time_repeats)
from bcssl_mm.evaluation.knn import DEFAULT_KS, TEMPERATURE, knn_classify

MIB = 2**20


def dense_knn(bank: torch.Tensor, bank_labels: torch.Tensor,
              queries: torch.Tensor, query_labels: torch.Tensor,
              num_classes: int, ks: Sequence[int],
              temperature: float) -> Dict[str, float]:
    """The plain k-NN: the whole (Q, N) similarity matrix at once."""
    sim = F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T  # (Q, N)
    sim, idx = sim.topk(max(ks), dim=1)  # (Q, K)
    weights, votes = (sim / temperature).exp(), bank_labels[idx]
    metrics = {}
    for k in sorted(ks):
        scores = weights.new_zeros((len(queries), num_classes))
        scores.scatter_add_(1, votes[:, :k], weights[:, :k])
        # vote ties to the lower class index, as the chunked k-NN
        top = scores.sort(
            dim=1, descending=True, stable=True)[1][:, :min(5, num_classes)]
        hit = top == query_labels[:, None]
        metrics[f'top1_k{k}'] = 100. * hit[:, 0].float().mean().item()
        metrics[f'top5_k{k}'] = 100. * hit.any(dim=1).float().mean().item()
    return metrics


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bank-size', type=int, default=100_000)
    parser.add_argument('--queries', type=int, default=10_000)
    parser.add_argument('--dim', type=int, default=768)
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument(
        '--noise',
        type=float,
        default=4.,
        help='feature noise around the class centres (unit variance)')
    parser.add_argument(
        '--nb-knn', type=int, nargs='+', default=list(DEFAULT_KS))
    parser.add_argument('--query-chunk', type=int, default=1024)
    parser.add_argument('--bank-chunk', type=int, default=65536)
    parser.add_argument('--warmup', type=int, default=0)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', help='also write the results here')
    return parser


def make_inputs(args: argparse.Namespace, device: torch.device) -> tuple:
    """Bank, bank labels, queries, query labels: noisy copies of one random
    centre per class, so that accuracies are neither 0 nor 100."""
    g = torch.Generator().manual_seed(args.seed)
    centres = torch.randn(args.classes, args.dim, generator=g)
    bank_labels = torch.randint(
        0, args.classes, (args.bank_size, ), generator=g)
    query_labels = torch.randint(
        0, args.classes, (args.queries, ), generator=g)
    bank = centres[bank_labels] + args.noise * torch.randn(
        args.bank_size, args.dim, generator=g)
    queries = centres[query_labels] + args.noise * torch.randn(
        args.queries, args.dim, generator=g)
    return tuple(
        t.to(device) for t in (bank, bank_labels, queries, query_labels))


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Time ``name`` and measure its peak memory in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    common = (*make_inputs(args, device), args.classes, args.nb_knn,
              TEMPERATURE)
    if name == 'chunked':

        def fn():
            return knn_classify(
                *common,
                query_chunk=args.query_chunk,
                bank_chunk=args.bank_chunk)
    else:

        def fn():
            return dense_knn(*common)

    memory = PeakMemory(device)
    memory.start()
    times, results = time_repeats(fn, device, args.warmup, args.repeats)
    metrics = results[-1]
    median, spread = median_and_spread(times)
    return dict(
        seconds=median,
        spread=spread,
        times=times,
        peak_mib=memory.peak_bytes() / MIB,
        method=memory.method,
        threads=torch.get_num_threads(),
        metrics=metrics)


def main(args: argparse.Namespace) -> Dict[str, dict]:
    # NOTE: each implementation runs in a fresh process: in one process the
    # allocator keeps what the first one freed, and the second one's
    # resident-set increase would be understated
    results: Dict[str, dict] = {}
    ctx = mp.get_context('spawn')
    for name in ('chunked', 'dense'):
        with ctx.Pool(1) as pool:
            results[name] = pool.apply(run_one, (name, args))
    device = args.device
    chunked, dense = results['chunked'], results['dense']
    for key, value in dense['metrics'].items():
        if abs(chunked['metrics'][key] - value) > 1e-6:
            raise AssertionError(f'chunked and dense k-NN differ on {key}: '
                                 f'{chunked["metrics"][key]} vs {value}')
    k20 = 20 if 20 in args.nb_knn else max(args.nb_knn)
    rows = [[
        name, f'{r["seconds"]:.2f}', f'{r["spread"]:.0%}',
        f'{r["peak_mib"]:.0f}', f'{r["metrics"][f"top1_k{k20}"]:.2f}'
    ] for name, r in results.items()]
    block_mib = 4 * args.query_chunk * args.bank_chunk / MIB
    print(
        format_table(
            ('k-NN', 's (median)', 'spread', 'peak MiB', f'top-1 k={k20}'),
            rows,
            align=['<', '>', '>', '>', '>'],
            notes=[
                f'{args.queries} queries x {args.bank_size} bank x '
                f'{args.dim} dims, {args.classes} classes, '
                f'k = {sorted(args.nb_knn)}, {args.repeats} runs, '
                f'{chunked["threads"]} threads, {device}',
                f'dense similarity matrix: '
                f'{4 * args.queries * args.bank_size / MIB:.0f} MiB; chunked '
                f'block: {block_mib:.0f} MiB', f'chunked / dense time: '
                f'{chunked["seconds"] / dense["seconds"]:.2f}; peak memory: '
                f'{chunked["method"]}, each in a fresh process'
            ]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
