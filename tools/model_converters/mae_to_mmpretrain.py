"""Convert an official MAE or MAE-Lite checkpoint to mmpretrain MAE names.

Two input layouts, detected from the keys (``--format`` insists on one):

- official MAE (facebookresearch/mae), e.g. ``mae_pretrain_vit_base.pth``:
  ``{'model': {...}}`` with the encoder ``cls_token``, ``pos_embed``,
  ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*`` (and the decoder
  ``mask_token``, ``decoder_*`` in the ``*_full.pth`` files);
- MAE-Lite (wangsr126/mae-lite): ``{'model': {...}, 'start_epoch', ...}``
  with ``module.model.*`` (encoder and decoder), and for D-MAE-Lite the
  teacher encoder ``module.tch_model.*`` and the head adapter
  ``module.attn_adapter.adapterN.weight``.

Output: ``{'meta', 'state_dict'}`` with the encoder as ``backbone.*``
(mmpretrain ``MAEViT`` names), the decoder as ``neck.*``
(``MAEPretrainDecoder``), the teacher as ``teacher.*`` (``MAEViT``) and the
adapter as ``attn_adapter.weight``: the keys of mmpretrain's ``MAE`` and of
the toolkit's ``DMAELite``. An official MAE-Base file is then the
``teacher_checkpoint`` of ``DMAELite`` (keys ``backbone.*``). Each part is
checked by loading the written file strictly into the model its shapes
describe (widths from ``pos_embed`` / ``decoder_embed``, depths from the
block counts) before the file gets its name. Every tensor is kept as it is,
``pos_embed`` included: MAE's sin-cos table is the transpose of mmpretrain's.
The renaming tables live in ``bcssl_mm/models/backbones/mae_checkpoint.py``.

Head counts are not in the shapes (``qkv`` is (3C, C) however it is split),
so they are arguments, recorded in ``meta``. Defaults: encoder 12 (MAE ViT-B
and MAE-Lite's ViT-Tiny; 16 for ViT-L/H), decoder 16 for official MAE and 3
for MAE-Lite, teacher 12 (MAE-Base). In a D-MAE-Lite checkpoint the adapter's
shape (H_teacher, H_student, 1, 1) gives the encoder's and the teacher's.

    python tools/model_converters/mae_to_mmpretrain.py \\
        mae_pretrain_vit_base.pth checkpoints/mae_vit-base-p16_in1k.pth
    python tools/model_converters/mae_to_mmpretrain.py \\
        mae_tiny_400e.pth.tar checkpoints/maelite_vit-tiny-p16_in1k.pth
    python tools/model_converters/mae_to_mmpretrain.py IN OUT \\
        --format mae --num-heads 16 --force

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs anything but tensors and plain values (an ``argparse.Namespace``
aside) is refused, not unpickled.
"""
import argparse
import os.path as osp

from bcssl_mm.models.backbones.mae_checkpoint import (LAYOUT_NAMES, LAYOUTS,
                                                      attn_adapter_layer,
                                                      mae_checkpoint_rules,
                                                      save_mae_checkpoint)
from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.utils.state_dict_remap import (ConversionError, check_output,
                                             converter_args_parser,
                                             load_source, remap, run_cli)


def get_args_parser() -> argparse.ArgumentParser:
    parser = converter_args_parser(__doc__,
                                   'official MAE or MAE-Lite checkpoint',
                                   'output checkpoint')
    parser.add_argument(
        '--format',
        choices=('auto', ) + LAYOUTS,
        default='auto',
        help='input layout (default: detected from the keys)')
    parser.add_argument(
        '--num-heads',
        type=int,
        help='encoder heads (default: 12, MAE ViT-B / MAE-Lite ViT-Tiny; '
        "D-MAE-Lite: the adapter's)")
    parser.add_argument(
        '--decoder-num-heads',
        type=int,
        help='decoder heads (default: 16 official MAE, 3 MAE-Lite)')
    parser.add_argument(
        '--teacher-num-heads',
        type=int,
        help="D-MAE-Lite teacher heads (default: the adapter's, else 12)")
    return parser


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    checkpoint = load_source(args.src)
    state_dict = extract_state_dict(checkpoint)
    if not isinstance(state_dict, dict):
        raise ConversionError(f'{args.src}: not a state dict')
    layout, rules = mae_checkpoint_rules(state_dict, args.src, args.format)
    print(f'{args.src} ({LAYOUT_NAMES[layout]}) -> {args.dst}')
    meta = dict(
        source=osp.abspath(args.src),
        converter='mae_to_mmpretrain',
        layout=layout)
    for key in ('epoch', 'start_epoch'):
        if isinstance(checkpoint.get(key), int):
            meta[key] = checkpoint[key]
    adapter_layer = attn_adapter_layer(state_dict, args.src)
    if adapter_layer is not None:
        meta['attn_adapter_layer'] = adapter_layer
    out, summary = remap(state_dict, rules, args.src)
    summary.print()
    save_mae_checkpoint(
        out,
        args.dst,
        meta,
        args.src,
        layout,
        num_heads=args.num_heads,
        decoder_num_heads=args.decoder_num_heads,
        teacher_num_heads=args.teacher_num_heads,
        force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
