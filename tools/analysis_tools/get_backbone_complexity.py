"""Parameters and FLOPs of BC-SSL / ConvNeXt backbones against the paper.

Counts parameters with a 1000-class linear head and FLOPs as multiply-adds
of one 224x224 image (mmengine's FlopAnalyzer), the convention of the paper's
Tables 1, 3 and 5 (RECIPES.md §1), and prints them beside the paper's values.

    python tools/analysis_tools/get_backbone_complexity.py [--shape 224]
"""
import argparse
from typing import List, NamedTuple, Optional

import torch
from mmengine.analysis import FlopAnalyzer

from bcssl_mm.analysis import ModelSpec, build_classifier


class Row(NamedTuple):
    name: str
    arch: str
    kernel_size: int
    with_bn: bool
    paper_params_m: Optional[float]
    paper_gflops: Optional[float]


# RECIPES.md §1 (paper Tables 1, 3, 5)
ROWS = [
    Row('ConvNeXt-T (no BN)', 'tiny', 3, False, 28, None),
    Row('ConvNeXt-T (no BN)', 'tiny', 5, False, 28, None),
    Row('ConvNeXt-T (no BN)', 'tiny', 7, False, 29, None),
    Row('BC-SSL-T', 'tiny', 3, True, 28, 4.4),
    Row('BC-SSL-T', 'tiny', 5, True, 28, 4.4),
    Row('BC-SSL-T', 'tiny', 7, True, 29, 4.5),
    Row('BC-SSL-T', 'tiny', 9, True, 29, 4.5),
    Row('BC-SSL-T', 'tiny', 15, True, 30, 4.8),
    Row('BC-SSL-S', 'small', 9, True, 50, None),
]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--shape', type=int, default=224, help='input side in pixels')
    parser.add_argument(
        '--no-flops',
        action='store_true',
        help='count parameters only (fast)')
    return parser


def count(row: Row, shape: int, flops: bool) -> dict:
    model = build_classifier(
        ModelSpec(row.name, 'bcssl', row.arch, row.kernel_size, row.with_bn))
    params = sum(p.numel() for p in model.parameters())
    gflops = None
    if flops:
        analyzer = FlopAnalyzer(model, torch.randn(1, 3, shape, shape))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        gflops = analyzer.total() / 1e9
    return dict(params_m=params / 1e6, gflops=gflops)


def format_table(rows: List[Row], results: List[dict]) -> str:
    header = ('model', 'kernel', 'params (M)', 'paper', 'GFLOPs', 'paper',
              'match')
    lines = [header]
    for row, res in zip(rows, results):
        ok = abs(res['params_m'] - row.paper_params_m) <= 1.0
        if res['gflops'] is not None and row.paper_gflops is not None:
            ok = ok and abs(res['gflops'] - row.paper_gflops) <= 0.06
        lines.append(
            (row.name, str(row.kernel_size), f"{res['params_m']:.2f}",
             f'{row.paper_params_m:g}',
             '-' if res['gflops'] is None else f"{res['gflops']:.2f}",
             '-' if row.paper_gflops is None else f'{row.paper_gflops:g}',
             'yes' if ok else 'NO'))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [' | '.join(c.ljust(w) for c, w in zip(line, widths))
           for line in lines]
    out.insert(1, '-+-'.join('-' * w for w in widths))
    return '\n'.join(out)


def main(args: argparse.Namespace) -> List[dict]:
    results = [count(row, args.shape, not args.no_flops) for row in ROWS]
    print(f'Parameters with a 1000-class head; FLOPs = multiply-adds at '
          f'{args.shape}x{args.shape}. Paper values from RECIPES.md §1 '
          '(match: params within 1M, FLOPs within 0.06G).')
    print(format_table(ROWS, results))
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
