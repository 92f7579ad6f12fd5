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
the depthwise weight, BN from ``lkb_origin.bn``).

    python tools/model_converters/bcssl_fork_to_mmpretrain.py \\
        checkpoint0300.pth checkpoints/bcssl-t_dino300_teacher.pth
    python tools/model_converters/bcssl_fork_to_mmpretrain.py IN OUT \\
        --part student

Checkpoints are pickles: convert only files you trust.
"""
import argparse
import os.path as osp
import re
from typing import List

from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.models.utils.convert import (ConversionError, Rule, check_output,
                                           first_keys, load_source,
                                           num_stages_of,
                                           official_convnext_rules, remap,
                                           save_backbone_checkpoint)

# the fork wraps student and teacher in DDP; a bare backbone has neither
PREFIX = r'(?:module\.)?(?:backbone\.)?'
PARTS = ('teacher', 'student')
STAGE_KEY = PREFIX + r'(?:stages|downsample_layers)\.(\d+)\.'
# keys that are already in BCSSLConvNeXt's names
RENAMED_KEY = (
    PREFIX + r'stages\.\d+\.\d+\.(?:depthwise_conv|dw_norm|pointwise_conv)')


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help="checkpoint of the authors' DINO fork")
    parser.add_argument('dst', help='output backbone checkpoint')
    parser.add_argument(
        '--part',
        choices=PARTS,
        default='teacher',
        help='which backbone to convert (default: teacher)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing output')
    return parser


def fork_rules(num_stages: int) -> List[Rule]:
    """The fork's names -> BCSSLConvNeXt's (``backbone.*``)."""
    block = PREFIX + r'stages\.(\d+)\.(\d+)\.large_kernel\.lkb_origin\.'
    to_block = r'backbone.stages.\1.\2.'
    bn = r'bn\.(weight|bias|running_mean|running_var|num_batches_tracked)'
    return [
        Rule(block + r'conv\.weight', to_block + 'depthwise_conv.weight',
             'stages.i.j.large_kernel.lkb_origin.conv -> depthwise_conv'),
        Rule(block + bn, to_block + r'dw_norm.\3',
             'stages.i.j.large_kernel.lkb_origin.bn -> dw_norm'),
        *official_convnext_rules(PREFIX, num_stages),
        Rule(r'(?:module\.)?head\..+', None, 'DINO projection head'),
    ]


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    checkpoint = load_source(args.src)
    meta = dict(
        source=osp.abspath(args.src), converter='bcssl_fork_to_mmpretrain')
    if isinstance(checkpoint, dict) and any(p in checkpoint for p in PARTS):
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
    num_stages = num_stages_of(state_dict, STAGE_KEY) if isinstance(
        state_dict, dict) else 0
    if not num_stages:
        raise ConversionError(
            f'{where}: no key starts with '
            "'module.backbone.{downsample_layers,stages}.' (nor without "
            f"'module.' / 'backbone.'); first keys: {first_keys(state_dict)}")

    converted = next((k for k in state_dict if re.match(RENAMED_KEY, k)), None)
    if converted:
        raise ConversionError(
            f'{where}: keys are already in BCSSLConvNeXt names (e.g. '
            f'{converted!r}), not the fork\'s; for a bcssl_mm DINO checkpoint '
            'use tools/model_converters/extract_dino_backbone.py')

    print(f'{where} -> {args.dst}')
    out, summary = remap(state_dict, fork_rules(num_stages), where)
    summary.print()
    save_backbone_checkpoint(out, args.dst, meta, where, force=args.force)


if __name__ == '__main__':
    main(get_args_parser().parse_args())
