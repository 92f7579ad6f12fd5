"""Parameters and FLOPs of the paper's models against the paper's values.

Every model of the paper's Tables 1, 3 and 5: BC-SSL-T (k 3..15), BC-SSL-S,
ConvNeXt-T without BN, Swin-T, Swin-S, ViT-S/16 (DINO's ViT-S = DeiT-S
shape) and the ResNet-50 baseline, built with mmpretrain (random weights).
Counts parameters with a 1000-class linear head and FLOPs as multiply-adds of
one 224x224 image (mmengine's FlopAnalyzer), the convention of the paper
(docs/recipes.md §1), and prints them beside

* ``paper``: the values the paper prints (docs/recipes.md §1 and §5, Table 3);
* ``reference``: published counts of the reference models from their model
  cards (torchvision's weight tables; timm's ``deit_small_patch16_224``),
  named per row; the paper prints no FLOPs for them.

FlopAnalyzer counts attention written as ``matmul`` (mmpretrain's Swin window
attention) but has no handle for the fused ``scaled_dot_product_attention``
that mmpretrain's ViT calls; ``bcssl_mm.analysis.zoo.count_macs`` adds one, so
the ViT-S figure includes its attention (0.36 G of its 4.6 G).

    python tools/analysis_tools/get_backbone_complexity.py [--shape 224]
        [--no-flops]
"""
import argparse
from typing import List, NamedTuple, Optional

from bcssl_mm.analysis.zoo import ModelSpec, build_classifier, count_macs

# match tolerances: the paper rounds loosely (docs/recipes.md §1); model cards
# print 0.1 M and 0.01 G (timm 0.1 G), and counters differ in what they
# count for norms and attention by a few hundredths of a G
PAPER_PARAMS_TOL_M, PAPER_GFLOPS_TOL = 1.0, 0.06
REF_PARAMS_TOL_M, REF_GFLOPS_TOL = 0.1, 0.06


class Reference(NamedTuple):
    params_m: float
    gflops: float
    source: str


class Row(NamedTuple):
    name: str
    arch: Optional[str]
    kernel_size: Optional[int]
    with_bn: bool
    paper_params_m: Optional[float]
    paper_gflops: Optional[float]
    family: str = 'bcssl'
    reference: Optional[Reference] = None
    note: Optional[str] = None

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.name, self.family, self.arch, self.kernel_size,
                         self.with_bn)


TV = 'torchvision card'
# paper: docs/recipes.md §1 (Tables 1, 2, 5) and §5 (Table 3)
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
    Row('Swin-T', None, None, False, 28, None, 'swin-t',
        Reference(28.3, 4.49, TV)),
    Row('Swin-S', None, None, False, 49, None, 'swin-s',
        Reference(49.6, 8.74, TV)),
    Row('ViT-S/16', None, None, False, 21, None, 'vit-s',
        Reference(22.1, 4.6, 'timm deit_small_patch16_224 card'),
        note='the paper\'s 21M (from DINO) is the backbone without the '
        'head'),
    Row('ResNet-50', None, None, False, None, None, 'resnet50',
        Reference(25.6, 4.09, TV),
        note='Table 1 baseline; the paper prints no size for it'),
]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--shape',
        type=int,
        default=224,
        help='input side in pixels (also sets ViT\'s position embedding, so '
        'its parameters, and Swin\'s padding of small maps)')
    parser.add_argument(
        '--no-flops',
        action='store_true',
        help='count parameters only (fast)')
    return parser


def count(row: Row, shape: int, flops: bool) -> dict:
    """Parameters (M, with head and backbone only) and GFLOPs of ``row``."""
    model = build_classifier(row.spec, img_size=shape)
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return dict(
        params_m=params / 1e6,
        backbone_m=backbone / 1e6,
        gflops=count_macs(model, shape) / 1e9 if flops else None)


def _match(pairs: List[tuple]) -> str:
    """'yes' / 'NO' over (value, target, tol); '-' when nothing to compare."""
    checks = [abs(v - t) <= tol for v, t, tol in pairs
              if v is not None and t is not None]
    return '-' if not checks else 'yes' if all(checks) else 'NO'


def _fmt(value: Optional[float], spec: str = 'g') -> str:
    return '-' if value is None else format(value, spec)


def format_table(rows: List[Row], results: List[dict]) -> str:
    header = ('model', 'kernel', 'params (M)', 'backbone (M)', 'paper',
              'GFLOPs', 'paper', 'match', 'reference', 'ref source',
              'ref match')
    lines = [header]
    notes = []
    for row, res in zip(rows, results):
        ref = row.reference
        name = row.name
        if row.note:
            notes.append(f'{"*" * (len(notes) + 1)} {row.name}: {row.note}')
            name += '*' * len(notes)
        lines.append(
            (name, _fmt(row.kernel_size), f"{res['params_m']:.2f}",
             f"{res['backbone_m']:.2f}", _fmt(row.paper_params_m),
             _fmt(res['gflops'], '.2f'), _fmt(row.paper_gflops),
             _match([(res['params_m'], row.paper_params_m,
                      PAPER_PARAMS_TOL_M),
                     (res['gflops'], row.paper_gflops, PAPER_GFLOPS_TOL)]),
             '-' if ref is None else f'{ref.params_m:g}M / {ref.gflops:g}G',
             '-' if ref is None else ref.source,
             '-' if ref is None else _match([
                 (res['params_m'], ref.params_m, REF_PARAMS_TOL_M),
                 (res['gflops'], ref.gflops, REF_GFLOPS_TOL)
             ])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [' | '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
           for line in lines]
    out.insert(1, '-+-'.join('-' * w for w in widths))
    return '\n'.join(out + notes)


def main(args: argparse.Namespace) -> List[dict]:
    results = [count(row, args.shape, not args.no_flops) for row in ROWS]
    print(f'Parameters with a 1000-class head (and of the backbone alone); '
          f'FLOPs = multiply-adds at {args.shape}x{args.shape}, attention '
          'included. paper: docs/recipes.md §1, §5 (match: params within '
          f'{PAPER_PARAMS_TOL_M:g}M, FLOPs within {PAPER_GFLOPS_TOL:g}G); '
          'reference: published model cards (ref match: params within '
          f'{REF_PARAMS_TOL_M:g}M, FLOPs within {REF_GFLOPS_TOL:g}G).')
    print(format_table(ROWS, results))
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
