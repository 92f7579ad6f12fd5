"""Extract the teacher (or student) backbone of a bcssl_mm DINO checkpoint.

Input: an mmengine checkpoint written by DINO pretraining in this toolkit
(``bcssl_mm/models/algorithms/dino.py``), ``{'meta', 'state_dict',
'optimizer', 'message_hub', ...}`` with state-dict keys ``backbone.*`` and
``neck.*`` (student), ``teacher.backbone.*`` and ``teacher.neck.*`` (teacher,
the EMA of the student: the weights DINO evaluates and transfers) and
``head.loss_module.center``.

Output: ``{'meta': {...}, 'state_dict': {'backbone.<key>': tensor}}``, the
input of ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=OUT,
prefix='backbone.')`` in the Mask R-CNN configs. Projection heads, the loss
centre and the other part's backbone are dropped.

A BC-SSL / ConvNeXt backbone (keys ``stages.i.j.depthwise_conv.weight``) is
checked by loading the output strictly into the ``BCSSLConvNeXt`` inferred
from its shapes. Other backbones (the ResNet, ViT and Swin baselines) are
extracted without that check: inferring their architecture from shapes is a
converter of its own for each, and their configs load them with mmengine's
loader anyway; the script says so when it skips the check.

    python tools/model_converters/extract_dino_backbone.py \\
        work_dirs/dino_bcssl-t/epoch_100.pth checkpoints/bcssl-t_teacher.pth
    python tools/model_converters/extract_dino_backbone.py IN OUT \\
        --part student --force

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs anything but tensors, plain values and mmengine's training state is
refused, not unpickled.
"""
import argparse
import os.path as osp
import re

from bcssl_mm.models.backbones.bcssl_convnext import (
    infer_bcssl_convnext_cfg, save_bcssl_convnext_checkpoint)
from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.utils.state_dict_remap import (ConversionError, Rule,
                                             check_output,
                                             converter_args_parser, first_keys,
                                             load_source, remap, run_cli,
                                             save_checkpoint)

# where each part's backbone lives in the DINO algorithm's state dict
PREFIXES = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}
# copied from the source checkpoint's meta, when present
META_KEYS = ('epoch', 'iter', 'experiment_name')


def get_args_parser() -> argparse.ArgumentParser:
    parser = converter_args_parser(__doc__, 'DINO checkpoint (mmengine)',
                                   'output backbone checkpoint')
    parser.add_argument(
        '--part',
        choices=sorted(PREFIXES),
        default='teacher',
        help='which backbone to extract (default: teacher)')
    return parser


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    checkpoint = load_source(args.src)
    state_dict = extract_state_dict(checkpoint)
    prefix = PREFIXES[args.part]
    if not isinstance(state_dict, dict) or not any(
            k.startswith(prefix) for k in state_dict):
        hint = ''
        if isinstance(checkpoint,
                      dict) and {'teacher', 'student'} <= set(checkpoint):
            hint = (" It looks like a checkpoint of the authors' DINO fork: "
                    'use tools/model_converters/bcssl_fork_to_mmpretrain.py.')
        raise ConversionError(
            f'{args.src}: no key starts with {prefix!r} (the {args.part} '
            f'backbone of a bcssl_mm DINO checkpoint); first keys: '
            f'{first_keys(state_dict)}.{hint}')

    print(f'{args.src} ({args.part}) -> {args.dst}')
    rules = [
        Rule(
            re.escape(prefix) + r'(.+)', r'backbone.\1',
            f'{prefix}* -> backbone.*'),
        Rule(r'.+', None, f'not the {args.part} backbone'),
    ]
    out, summary = remap(state_dict, rules, args.src)
    summary.print()

    src_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = dict(
        source=osp.abspath(args.src),
        converter='extract_dino_backbone',
        part=args.part)
    if isinstance(src_meta, dict):
        meta.update({
            k: src_meta[k]
            for k in META_KEYS if isinstance(src_meta.get(k), (int, str))
        })
    if infer_bcssl_convnext_cfg(out) is None:
        print('not a BC-SSL / ConvNeXt backbone (no stages.i.j.'
              'depthwise_conv.weight): extracted without the strict '
              'BCSSLConvNeXt check')
        save_checkpoint(out, args.dst, meta, force=args.force)
    else:
        save_bcssl_convnext_checkpoint(
            out, args.dst, meta, args.src, force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
