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
refused, naming the keys that no rule maps. The renaming tables live with
the backbone (``bcssl_mm/models/backbones/bcssl_convnext.py``).

    python tools/model_converters/convnext_to_bcssl.py \\
        convnext_tiny_1k_224_ema.pth checkpoints/convnext-t_in1k.pth
    python tools/model_converters/convnext_to_bcssl.py \\
        convnext_atto_timm.pth checkpoints/convnext-atto_timm.pth --force

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs anything but tensors and plain values is refused, not unpickled.
"""
import argparse
import os.path as osp

from bcssl_mm.models.backbones.bcssl_convnext import (
    check_convnext_classifier, convnext_checkpoint_rules,
    save_bcssl_convnext_checkpoint)
from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.utils.state_dict_remap import (ConversionError, check_output,
                                             converter_args_parser,
                                             load_source, remap, run_cli)


def get_args_parser() -> argparse.ArgumentParser:
    return converter_args_parser(__doc__,
                                 'official or timm ConvNeXt checkpoint',
                                 'output checkpoint')


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    state_dict = extract_state_dict(load_source(args.src))
    if not isinstance(state_dict, dict):
        raise ConversionError(f'{args.src}: not a state dict')
    layout, rules = convnext_checkpoint_rules(state_dict, args.src)
    print(f'{args.src} ({layout} ConvNeXt) -> {args.dst}')
    out, summary = remap(state_dict, rules, args.src)
    summary.print()
    num_classes = check_convnext_classifier(out, args.src)
    if num_classes is not None:
        print(f'classifier: head.fc, {num_classes} classes')
    meta = dict(
        source=osp.abspath(args.src),
        converter='convnext_to_bcssl',
        layout=layout)
    save_bcssl_convnext_checkpoint(
        out, args.dst, meta, args.src, force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
