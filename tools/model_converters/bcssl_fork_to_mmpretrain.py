"""Convert a checkpoint of the authors' DINO fork to a BCSSLConvNeXt one.

Input: ``{'student', 'teacher', 'optimizer', 'epoch', 'args',
'dino_loss', 'fp16_scaler'}``, each of ``student`` / ``teacher`` holding
``module.backbone.*`` and ``module.head.*`` (the DINO projection head). The
backbone uses official ConvNeXt names, except that a block's depthwise conv
and its BatchNorm are ``large_kernel.lkb_origin.{conv,bn}``. A bare backbone
state dict of the fork (keys ``downsample_layers.*``, ``stages.*``, ``norm.*``,
optionally under ``module.`` / ``backbone.``) is accepted too; ``--part`` is
then ignored. Layout: docs/recipes.md §1.

Mapping (``stages.i.j.`` prefixes kept):

    module.backbone.downsample_layers.*     -> backbone.downsample_layers.*
    ...large_kernel.lkb_origin.conv.weight  -> ...depthwise_conv.weight
    ...large_kernel.lkb_origin.bn.*         -> ...dw_norm.*
    ...dwconv.* (blocks without BN)         -> ...depthwise_conv.*
    ...pwconv1.* / pwconv2.*                -> ...pointwise_conv1.* / 2.*
    ...norm.*, ...gamma                     -> unchanged
    module.backbone.norm.* (final)          -> backbone.norm3.*
    module.head.*                           -> dropped (DINO head)

The output, ``{'meta', 'state_dict': {'backbone.*'}}``, is checked by loading
it strictly into the ``BCSSLConvNeXt`` inferred from its shapes (kernel from
the depthwise weight, BN from ``lkb_origin.bn``). The renaming tables live
with the backbone (``bcssl_mm/models/backbones/bcssl_convnext.py``).

    python tools/model_converters/bcssl_fork_to_mmpretrain.py \\
        checkpoint0300.pth checkpoints/bcssl-t_dino300_teacher.pth
    python tools/model_converters/bcssl_fork_to_mmpretrain.py IN OUT \\
        --part student

Checkpoints are read with ``torch.load(..., weights_only=True)``; the fork's
``args`` (an ``argparse.Namespace``) is admitted, anything else that is not
a tensor or a plain value is refused, not unpickled.
"""
import argparse
import os.path as osp

from bcssl_mm.models.backbones.bcssl_convnext import (
    BCSSL_FORK_PARTS, bcssl_fork_rules, save_bcssl_convnext_checkpoint)
from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.utils.state_dict_remap import (ConversionError, check_output,
                                             converter_args_parser, first_keys,
                                             load_source, remap, run_cli)


def get_args_parser() -> argparse.ArgumentParser:
    parser = converter_args_parser(__doc__,
                                   "checkpoint of the authors' DINO fork",
                                   'output backbone checkpoint')
    parser.add_argument(
        '--part',
        choices=BCSSL_FORK_PARTS,
        default='teacher',
        help='which backbone to convert (default: teacher)')
    return parser


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    checkpoint = load_source(args.src)
    meta = dict(
        source=osp.abspath(args.src), converter='bcssl_fork_to_mmpretrain')
    if isinstance(checkpoint, dict) and any(p in checkpoint
                                            for p in BCSSL_FORK_PARTS):
        if not isinstance(checkpoint.get(args.part), dict):
            raise ConversionError(
                f'{args.src}: no {args.part!r} state dict (top-level keys: '
                f'{first_keys(checkpoint, 10)})')
        state_dict = checkpoint[args.part]
        where = f"{args.src}['{args.part}']"
        meta['part'] = args.part
        if isinstance(checkpoint.get('epoch'), int):
            meta['epoch'] = checkpoint['epoch']
    else:
        state_dict = extract_state_dict(checkpoint)
        where = args.src
        meta['part'] = 'bare backbone state dict'
        print(f'{args.src}: no teacher/student entries, read as a bare '
              'backbone state dict (--part ignored)')
    if not isinstance(state_dict, dict):
        raise ConversionError(f'{where}: not a state dict')
    rules = bcssl_fork_rules(state_dict, where)

    print(f'{where} -> {args.dst}')
    out, summary = remap(state_dict, rules, where)
    summary.print()
    save_bcssl_convnext_checkpoint(
        out, args.dst, meta, where, force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
