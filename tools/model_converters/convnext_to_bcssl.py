"""Convert an official or timm ConvNeXt checkpoint to BCSSLConvNeXt names.

Two input layouts, detected from the keys:

- official (facebookresearch/ConvNeXt): ``{'model': {...}}`` (or the bare
  dict) with ``downsample_layers.*``, ``stages.i.j.{dwconv,norm,pwconv1,
  pwconv2,gamma}``, the final ``norm.*`` and the classifier ``head.*``;
- timm (``timm.create_model('convnext_*').state_dict()``): ``stem.{0,1}``,
  ``stages.i.downsample.{0,1}``, ``stages.i.blocks.j.{conv_dw,norm,mlp.fc1,
  mlp.fc2,gamma}`` (``mlp.fc*`` are 1x1 convs in the ``conv_mlp`` variants,
  e.g. atto, and are flattened to linear weights), ``head.norm``, ``head.fc``.

Output: ``{'meta', 'state_dict'}`` with ``backbone.*`` in mmpretrain ConvNeXt
names (the final norm as ``backbone.norm3``) and the classifier as
``head.fc.*`` (mmpretrain ``LinearClsHead``), so the file loads into an
mmpretrain ``ImageClassifier`` and, with ``prefix='backbone.'``, into a
detector's backbone. It is checked by loading it strictly into
``BCSSLConvNeXt(kernel_size=7, dw_norm_cfg=None)`` (arch inferred from the
shapes), which computes exactly what the source ConvNeXt computes. ConvNeXt V2
(GRN), timm's ``norm_pre`` / ``head.pre_logits`` variants and other stems are
refused, naming the keys that no rule maps.

    python tools/model_converters/convnext_to_bcssl.py \\
        convnext_tiny_1k_224_ema.pth checkpoints/convnext-t_in1k.pth
    python tools/model_converters/convnext_to_bcssl.py \\
        convnext_atto_timm.pth checkpoints/convnext-atto_timm.pth --force

Checkpoints are pickles: convert only files you trust.
"""
import argparse
import os.path as osp
from typing import List, Tuple

import torch

from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.models.utils.convert import (ConversionError, Rule, check_output,
                                           first_keys, load_source,
                                           num_stages_of,
                                           official_convnext_rules, remap,
                                           save_backbone_checkpoint)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official or timm ConvNeXt checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing output')
    return parser


def _to_linear(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 1, 1) 1x1 conv weight -> (C_out, C_in) linear weight."""
    return weight.flatten(1) if weight.dim() == 4 else weight


def official_rules(num_stages: int) -> List[Rule]:
    """facebookresearch/ConvNeXt names -> BCSSLConvNeXt / LinearClsHead."""
    return official_convnext_rules('', num_stages) + [
        Rule(r'head\.(weight|bias)', r'head.fc.\1', 'head -> head.fc'),
    ]


def timm_rules(num_stages: int) -> List[Rule]:
    """timm ConvNeXt names -> BCSSLConvNeXt / LinearClsHead."""
    block = r'stages\.(\d+)\.blocks\.(\d+)\.'
    to_block = r'backbone.stages.\1.\2.'
    last = num_stages - 1
    return [
        Rule(r'stem\.([01])\.(weight|bias)', r'backbone.downsample_layers.0.'
             r'\1.\2', 'stem -> downsample_layers.0'),
        Rule(r'stages\.(\d+)\.downsample\.([01])\.(weight|bias)',
             r'backbone.downsample_layers.\1.\2.\3',
             'stages.i.downsample -> downsample_layers.i'),
        Rule(block + r'conv_dw\.(weight|bias)',
             to_block + r'depthwise_conv.\3',
             'stages.i.blocks.j.conv_dw -> stages.i.j.depthwise_conv'),
        Rule(block + r'norm\.(weight|bias)', to_block + r'norm.\3',
             'stages.i.blocks.j.norm -> stages.i.j.norm'),
        Rule(
            block + r'mlp\.fc1\.(weight|bias)',
            to_block + r'pointwise_conv1.\3',
            'stages.i.blocks.j.mlp.fc1 -> stages.i.j.pointwise_conv1 '
            '(1x1 conv weights flattened)', _to_linear),
        Rule(
            block + r'mlp\.fc2\.(weight|bias)',
            to_block + r'pointwise_conv2.\3',
            'stages.i.blocks.j.mlp.fc2 -> stages.i.j.pointwise_conv2 '
            '(1x1 conv weights flattened)', _to_linear),
        Rule(block + r'gamma', to_block + 'gamma',
             'stages.i.blocks.j.gamma -> stages.i.j.gamma'),
        Rule(r'head\.norm\.(weight|bias)', rf'backbone.norm{last}.\1',
             f'head.norm -> norm{last}'),
        Rule(r'head\.fc\.(weight|bias)', r'head.fc.\1', 'head.fc (unchanged)'),
    ]


def detect_layout(state_dict: dict, source: str) -> Tuple[str, List[Rule]]:
    """Return ('official' | 'timm', rules), or raise naming what is missing."""
    if any(k.startswith('downsample_layers.') for k in state_dict):
        return 'official', official_rules(
            num_stages_of(state_dict, r'downsample_layers\.(\d+)\.'))
    if any(k.startswith('stem.') for k in state_dict):
        return 'timm', timm_rules(
            num_stages_of(state_dict, r'stages\.(\d+)\.'))
    if any(k.startswith('backbone.downsample_layers.') for k in state_dict):
        raise ConversionError(
            f'{source}: keys start with "backbone.downsample_layers.": '
            'already in mmpretrain / BCSSLConvNeXt names, nothing to convert')
    raise ConversionError(
        f'{source}: neither an official ConvNeXt checkpoint (keys '
        "'downsample_layers.*', optionally under 'model') nor a timm ConvNeXt "
        f"state dict (keys 'stem.*'); first keys: {first_keys(state_dict)}")


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    state_dict = extract_state_dict(load_source(args.src))
    if not isinstance(state_dict, dict):
        raise ConversionError(f'{args.src}: not a state dict')
    layout, rules = detect_layout(state_dict, args.src)
    print(f'{args.src} ({layout} ConvNeXt) -> {args.dst}')
    out, summary = remap(state_dict, rules, args.src)
    summary.print()
    fc = out.get('head.fc.weight')  # (num_classes, C_last)
    norm = next((v for k, v in out.items()
                 if k.startswith('backbone.norm') and k.endswith('.weight')),
                None)
    if fc is not None:
        if norm is None or fc.dim() != 2 or fc.shape[1] != norm.shape[0]:
            raise ConversionError(
                f'{args.src}: classifier weight {tuple(fc.shape)} does not '
                'match the width of the final norm '
                f'{None if norm is None else tuple(norm.shape)}')
        print(f'classifier: head.fc, {fc.shape[0]} classes')
    meta = dict(
        source=osp.abspath(args.src),
        converter='convnext_to_bcssl',
        layout=layout)
    save_backbone_checkpoint(out, args.dst, meta, args.src, force=args.force)


if __name__ == '__main__':
    main(get_args_parser().parse_args())
