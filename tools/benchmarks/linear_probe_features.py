"""Linear probe on cached features, with an lr sweep (a fast path).

NOT THE PROTOCOL. The paper's linear probe (and official DINO's
``eval_linear.py``; ``configs/dino/benchmarks/*_linear-*``) trains on
randomly resized, flipped crops, so it passes every training image through
the frozen backbone once per epoch. This tool trains the same linear layer
(weights N(0, 0.01), bias 0; SGD momentum 0.9, no weight decay; cosine from
the lr to 0 per epoch) on features computed once from centre crops, which
takes minutes instead of 100 passes through the backbone (dino #141), and
departs from the protocol in two ways:

- no augmentation: every epoch sees the same centre-crop feature of each
  image, so the classifier can overfit sooner, and its accuracy is not the
  protocol's;
- the lr is picked on the validation set, so the reported accuracy is
  optimistic: it is a guide for choosing the protocol's lr (dino #131: the
  right lr differs by orders of magnitude between architectures), not a
  number for the paper's tables.

Input: a feature cache directory, as the k-NN tool writes it with
``--dump-features DIR``: ``train.pt`` and ``val.pt``, each a dict
``{'features': float32 (N, C) raw pooled backbone features, 'labels': int64
(N,), 'classes': [str], 'meta': {...}}`` loadable with
``torch.load(weights_only=True)``, read and checked as the k-NN tool reads
it (:func:`bcssl_mm.evaluation.features.load_feature_cache`). Output: a
table of lr -> top-1 / top-5 on val (last epoch and best epoch), the lr
picked, and ``<work_dir>/linear_features.result.json``
(:mod:`bcssl_mm.evaluation.results`) with the picked lr's ``top1``,
``top5`` (last epoch), ``best_top1``, ``best_top5``.

    python tools/benchmarks/linear_probe_features.py FEATURE_DIR \\
        --lrs 0.001 0.01 0.1 1 --epochs 100 --batch-size 1024
"""
import argparse
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bcssl_mm.analysis.table import format_table
from bcssl_mm.evaluation.features import FeatureCacheError, load_feature_cache
from bcssl_mm.evaluation.results import parse_pretrain_name, write_result

DEPARTURE = ('NOTE: fast path, not the linear-probe protocol: no '
             'augmentation (centre-crop features only), and the lr is picked '
             'on val, so the accuracy is optimistic.')


@torch.no_grad()
def accuracy(logits: torch.Tensor, labels: torch.Tensor,
             topk: Sequence[int]) -> Dict[str, float]:
    """Top-k accuracies in percent, ``{'top1': ..., 'top5': ...}``."""
    pred = logits.topk(max(topk), dim=1).indices  # (N, max k)
    hit = pred == labels[:, None]
    return {
        f'top{k}': 100. * hit[:, :k].any(dim=1).float().mean().item()
        for k in topk
    }


def train_linear(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 num_classes: int,
                 lr: float,
                 epochs: int,
                 batch_size: int,
                 val_feats: Optional[torch.Tensor] = None,
                 val_labels: Optional[torch.Tensor] = None,
                 seed: int = 0) -> Dict[str, Any]:
    """Train the probe's linear layer; validate after every epoch.

    The layer, optimizer and schedule of the protocol: ``nn.Linear`` with
    weights N(0, 0.01) and bias 0, SGD (momentum 0.9, weight decay 0),
    cosine from ``lr`` to 0 stepped per epoch; shuffled mini-batches.

    Returns:
        dict: ``linear`` (the trained layer), ``history`` (one
        ``{'epoch', 'top1', 'top5'}`` per epoch when val is given), ``last``
        and ``best`` (entries of ``history``; best = highest top-1, the
        earliest of ties).
    """
    device = train_feats.device
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(train_feats.shape[1], num_classes).to(device)
    with torch.no_grad():
        linear.weight.copy_(
            torch.randn(linear.weight.shape, generator=gen) * 0.01)
        linear.bias.zero_()
    optimizer = torch.optim.SGD(
        linear.parameters(), lr=lr, momentum=0.9, weight_decay=0.)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs, eta_min=0.)
    topk = (1, 5) if num_classes >= 5 else (1, )
    history: List[Dict[str, float]] = []
    for epoch in range(epochs):
        order = torch.randperm(len(train_feats), generator=gen).to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(linear(train_feats[idx]), train_labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        if val_feats is not None:
            with torch.no_grad():
                acc = accuracy(linear(val_feats), val_labels, topk)
            history.append(dict(epoch=epoch + 1, **acc))
    out: Dict[str, Any] = dict(linear=linear, history=history)
    if history:
        out['last'] = history[-1]
        out['best'] = max(history, key=lambda r: (r['top1'], -r['epoch']))
    return out


def sweep(cache: Dict[str, Dict[str, Any]],
          lrs: Sequence[float],
          epochs: int,
          batch_size: int,
          seed: int = 0,
          device: str = 'cpu') -> List[Dict[str, Any]]:
    """One :func:`train_linear` per lr, same seed (same init and order).

    Returns:
        list[dict]: Per lr, ``{'lr', 'last', 'best'}``.
    """
    train, val = cache['train'], cache['val']
    tensors = [
        t.to(device) for t in (train['features'], train['labels'],
                               val['features'], val['labels'])
    ]
    runs = []
    for lr in lrs:
        run = train_linear(
            tensors[0],
            tensors[1],
            len(train['classes']),
            lr,
            epochs,
            batch_size,
            val_feats=tensors[2],
            val_labels=tensors[3],
            seed=seed)
        runs.append(dict(lr=lr, last=run['last'], best=run['best']))
    return runs


def pick(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The run of the highest last-epoch top-1 (the smallest lr of ties)."""
    return max(runs, key=lambda r: (r['last']['top1'], -r['lr']))


def format_sweep(runs: Sequence[Dict[str, Any]], picked: Dict[str,
                                                              Any]) -> str:
    """The lr -> accuracy table; the picked lr is marked with ``*``."""
    has_top5 = 'top5' in runs[0]['last']
    header = ['lr', 'top-1', 'top-5', 'best top-1', 'best epoch']
    rows = []
    for run in runs:
        last, best = run['last'], run['best']
        rows.append([
            f'{run["lr"]:g}' + (' *' if run is picked else ''),
            f'{last["top1"]:.2f}', f'{last["top5"]:.2f}' if has_top5 else None,
            f'{best["top1"]:.2f}', best['epoch']
        ])
    return format_table(
        header,
        rows,
        align=['<', '>', '>', '>', '>'],
        notes=[
            'top-1 / top-5: last epoch, on val (%); * = lr picked on val',
            DEPARTURE
        ])


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Linear probe on cached centre-crop features with an lr '
        'sweep. ' + DEPARTURE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument(
        'feature_dir',
        help='feature cache directory with train.pt and val.pt (the k-NN '
        'tool\'s --dump-features DIR)')
    parser.add_argument(
        '--lrs',
        type=float,
        nargs='+',
        default=[0.001, 0.01, 0.1, 1.0],
        help='learning rates to try, used as given (not scaled by the '
        'batch; the protocol\'s 0.001 x 1024 / 256 is 0.004 at '
        '--batch-size 1024) (default: %(default)s)')
    parser.add_argument(
        '--epochs',
        type=int,
        default=100,
        help='epochs of each run (default: %(default)s)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=1024,
        help='mini-batch size (default: %(default)s)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the initialisation and the batch order '
        '(default: %(default)s)')
    parser.add_argument(
        '--device', default='cpu', help='e.g. cuda (default: %(default)s)')
    parser.add_argument(
        '--work-dir',
        help='where linear_features.result.json goes (default: '
        'FEATURE_DIR)')
    parser.add_argument(
        '--pretrain-name',
        help='name of the pretraining run in the result (default: the '
        'cache\'s meta["pretrain"])')
    return parser


def main(args: argparse.Namespace) -> Dict[str, Any]:
    for name in ('epochs', 'batch_size'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be >= 1, got '
                             f'{getattr(args, name)}')
    bad = [lr for lr in args.lrs if not (lr > 0 and math.isfinite(lr))]
    if bad:
        raise ValueError(f'--lrs must be positive numbers, got {bad}')
    cache = load_feature_cache(args.feature_dir)
    train, val = cache['train'], cache['val']
    print(f'{args.feature_dir}: {len(train["labels"])} train / '
          f'{len(val["labels"])} val features, '
          f'{train["features"].shape[1]}-d, {len(train["classes"])} classes; '
          f'{args.epochs} epochs, batch {args.batch_size}')
    runs = sweep(cache, args.lrs, args.epochs, args.batch_size, args.seed,
                 args.device)
    picked = pick(runs)
    print(format_sweep(runs, picked))
    print(f'picked lr {picked["lr"]:g} (highest last-epoch top-1 on val: '
          f'{picked["last"]["top1"]:.2f})')

    if args.pretrain_name:
        pretrain = parse_pretrain_name(args.pretrain_name)
    elif isinstance(train['meta'].get('pretrain'), dict) \
            and 'name' in train['meta']['pretrain']:
        pretrain = dict(train['meta']['pretrain'])
    else:
        pretrain = {'name': osp.basename(osp.normpath(args.feature_dir))}
        print(f'the cache names no pretraining run; the result is named '
              f'{pretrain["name"]!r} (give --pretrain-name)')
    metrics = {k: v for k, v in picked['last'].items() if k != 'epoch'}
    metrics.update(
        {f'best_{k}': v
         for k, v in picked['best'].items() if k != 'epoch'})
    work_dir = args.work_dir or args.feature_dir
    path = write_result(
        work_dir,
        'linear_features',
        metrics,
        pretrain,
        source=dict(
            features=osp.abspath(args.feature_dir),
            lr=picked['lr'],
            best_epoch=picked['best']['epoch'],
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            sweep={f'{r["lr"]:g}': r['last']['top1']
                   for r in runs},
            protocol='fast path: centre-crop features, no augmentation, lr '
            'picked on val (optimistic)',
            meta=train['meta']))
    print(f'result written to {path}')
    return dict(runs=runs, picked=picked, path=path)


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (FeatureCacheError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}')
