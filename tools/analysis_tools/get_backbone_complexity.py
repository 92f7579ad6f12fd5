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
that mmpretrain's ViT calls; ``bcssl_mm.analysis.count_macs`` adds one, so
the ViT-S figure includes its attention (0.36 G of its 4.6 G).

    python tools/analysis_tools/get_backbone_complexity.py [--shape 224]
        [--no-flops]
"""
import argparse
from typing import List, NamedTuple, Optional

from bcssl_mm.analysis import build_model, count_macs, format_table
from bcssl_mm.analysis.zoo import parse_model_name

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
    """A row of the table.

    Args:
        name (str): The paper's name of the model, printed.
        model (str): Its name in ``bcssl_mm.analysis.zoo``'s vocabulary.
        paper_params_m (float, optional): Parameters (M) the paper prints.
        paper_gflops (float, optional): GFLOPs the paper prints.
        reference (Reference, optional): Published counts of the model.
        note (str, optional): A footnote.
    """
    name: str
    model: str
    paper_params_m: Optional[float]
    paper_gflops: Optional[float]
    reference: Optional[Reference] = None
    note: Optional[str] = None

    @property
    def kernel_size(self) -> Optional[int]:
        return parse_model_name(self.model).kernel_size


TV = 'torchvision card'
# paper: docs/recipes.md §1 (Tables 1, 2, 5) and §5 (Table 3)
ROWS = [
    Row('ConvNeXt-T (no BN)', 'bcssl_convnext_tiny_k3_nobn', 28, None),
    Row('ConvNeXt-T (no BN)', 'bcssl_convnext_tiny_k5_nobn', 28, None),
    Row('ConvNeXt-T (no BN)', 'bcssl_convnext_tiny_k7_nobn', 29, None),
    Row('BC-SSL-T', 'bcssl_convnext_tiny_k3', 28, 4.4),
    Row('BC-SSL-T', 'bcssl_convnext_tiny_k5', 28, 4.4),
    Row('BC-SSL-T', 'bcssl_convnext_tiny_k7', 29, 4.5),
    Row('BC-SSL-T', 'bcssl_convnext_tiny_k9', 29, 4.5),
    Row('BC-SSL-T', 'bcssl_convnext_tiny_k15', 30, 4.8),
    Row('BC-SSL-S', 'bcssl_convnext_small_k9', 50, None),
    Row('Swin-T', 'swin_tiny_patch4_window7_224', 28, None,
        Reference(28.3, 4.49, TV)),
    Row('Swin-S', 'swin_small_patch4_window7_224', 49, None,
        Reference(49.6, 8.74, TV)),
    Row('ViT-S/16',
        'vit_small_patch16_224',
        21,
        None,
        Reference(22.1, 4.6, 'timm deit_small_patch16_224 card'),
        note='the paper\'s 21M (from DINO) is the backbone without the '
        'head'),
    Row('ResNet-50',
        'resnet50',
        None,
        None,
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
        '--no-flops', action='store_true', help='count parameters only (fast)')
    return parser


def count(row: Row, shape: int, flops: bool) -> dict:
    """Parameters (M, with head and backbone only) and GFLOPs of ``row``."""
    model = build_model(row.model, img_size=shape)
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return dict(
        params_m=params / 1e6,
        backbone_m=backbone / 1e6,
        gflops=count_macs(model, shape) / 1e9 if flops else None)


def _match(pairs: List[tuple]) -> str:
    """'yes' / 'NO' over (value, target, tol); '-' when nothing to compare."""
    checks = [
        abs(v - t) <= tol for v, t, tol in pairs
        if v is not None and t is not None
    ]
    return '-' if not checks else 'yes' if all(checks) else 'NO'


def _fmt(value: Optional[float], spec: str = 'g') -> str:
    return '-' if value is None else format(value, spec)


def results_table(rows: List[Row], results: List[dict]) -> str:
    """The counts beside the paper's and the references', footnotes below."""
    lines, notes = [], []
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
             _match([(res['params_m'], row.paper_params_m, PAPER_PARAMS_TOL_M),
                     (res['gflops'], row.paper_gflops, PAPER_GFLOPS_TOL)]),
             None if ref is None else f'{ref.params_m:g}M / {ref.gflops:g}G',
             None if ref is None else ref.source,
             None if ref is None else _match([(res['params_m'], ref.params_m,
                                               REF_PARAMS_TOL_M),
                                              (res['gflops'], ref.gflops,
                                               REF_GFLOPS_TOL)])))
    header = ('model', 'kernel', 'params (M)', 'backbone (M)', 'paper',
              'GFLOPs', 'paper', 'match', 'reference', 'ref source',
              'ref match')
    return format_table(header, lines, notes=notes)


def main(args: argparse.Namespace) -> List[dict]:
    results = [count(row, args.shape, not args.no_flops) for row in ROWS]
    print(f'Parameters with a 1000-class head (and of the backbone alone); '
          f'FLOPs = multiply-adds at {args.shape}x{args.shape}, attention '
          'included. paper: docs/recipes.md §1, §5 (match: params within '
          f'{PAPER_PARAMS_TOL_M:g}M, FLOPs within {PAPER_GFLOPS_TOL:g}G); '
          'reference: published model cards (ref match: params within '
          f'{REF_PARAMS_TOL_M:g}M, FLOPs within {REF_GFLOPS_TOL:g}G).')
    print(results_table(ROWS, results))
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
