"""Extract one backbone of a bcssl_mm DINO, SelfPatch, MoCo v3, MAE or
D-MAE-Lite checkpoint.

The hand-off from every pretraining of the toolkit to every downstream tool
(Mask R-CNN, the linear probe, k-NN): whatever the algorithm and whatever
the backbone (BC-SSL / ConvNeXt, ResNet, ViT, Swin), the output is
``{'meta': {...}, 'state_dict': {'backbone.<key>': tensor}}``, the input of
``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=OUT,
prefix='backbone.')`` in the Mask R-CNN and linear-probe configs.
Projection heads, predictors, the DINO loss centre and the other part's
backbone are dropped.

Input: an mmengine checkpoint of this toolkit's pretraining. The algorithm
is told by the state-dict keys:

- DINO (``bcssl_mm/models/algorithms/dino.py``, keys
  ``teacher.backbone.*``): ``backbone.*`` and ``neck.*`` are the student,
  ``teacher.backbone.*`` and ``teacher.neck.*`` the teacher, and
  ``head.loss_module.center`` the loss centre. ``--part teacher`` (default)
  or ``student``. The teacher is the default because it is what DINO
  evaluates and transfers (its k-NN, linear probe and the paper's Mask
  R-CNN). SelfPatch (a DINO) has the same layout plus
  ``[teacher.]aggregator.*``, ``[teacher.]patch_neck.*`` and
  ``patch_head.loss_module.center``, which are dropped with the heads.
- MoCo v3 (``BCSSLMoCoV3``, keys ``momentum_encoder.backbone.*``):
  ``backbone.*`` and ``neck.*`` are the base encoder and its projector,
  ``head.predictor.*`` the predictor, ``momentum_encoder.backbone.*`` and
  ``momentum_encoder.neck.*`` the momentum encoder. ``--part base``
  (default) or ``momentum``. The base encoder is the default because it is
  what official MoCo v3 evaluates and transfers: its ``main_lincls.py`` and
  ``convert_to_deit.py`` keep the ``base_encoder`` weights; the momentum
  encoder, an EMA of it, only makes the contrastive keys.
- MAE (mmpretrain ``MAE``) and D-MAE-Lite (``DMAELite``), keys
  ``neck.decoder_embed.*``: ``backbone.*`` is the encoder, ``neck.*`` the
  decoder and, for D-MAE-Lite, ``teacher.*`` the frozen teacher encoder and
  ``attn_adapter.*`` the head adapter. ``--part encoder`` (default: what is
  fine-tuned and transferred) or ``teacher`` (D-MAE-Lite only).

The prefixes of each algorithm's parts, and the checks below, live beside
the algorithms (``bcssl_mm/models/algorithms/checkpoint_parts.py``).

Checks before the output is written (atomically: a temporary file renamed
into place, so that no unverified file carries the output's name):

- ``--config CONFIG`` (the pretraining config): the backbone is built from
  its ``model.backbone`` (its ``init_cfg`` removed) and the output is loaded
  into it with :func:`~bcssl_mm.models.utils.load_state_dict_strict`; any
  missing, unexpected or mis-shaped key stops the conversion with the list
  of them. This covers every backbone the toolkit pretrains, the mmpretrain
  ResNet, ViT and Swin included.
- A BC-SSL / ConvNeXt backbone (keys ``stages.i.j.depthwise_conv.weight``)
  is in any case loaded strictly into the ``BCSSLConvNeXt`` inferred from its
  shapes, whose arguments go to ``meta['backbone']``.
- Any other backbone without ``--config`` is saved without a check (its
  architecture cannot be inferred from shapes alone); the script says so.

    python tools/model_converters/extract_backbone.py \\
        work_dirs/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k/epoch_100.pth \\
        checkpoints/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth
    python tools/model_converters/extract_backbone.py \\
        work_dirs/mocov3_resnet50_8xb512-amp-coslr-100e_in1k/epoch_100.pth \\
        checkpoints/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.pth \\
        --config configs/mocov3/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py
    python tools/model_converters/extract_backbone.py IN OUT \\
        --part momentum --force

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs anything but tensors, plain values and mmengine's training state is
refused, not unpickled.
"""
import argparse
import os.path as osp

from bcssl_mm.models.algorithms.checkpoint_parts import (PARTS,
                                                         detect_algorithm,
                                                         save_backbone_part,
                                                         source_meta)
from bcssl_mm.models.utils import extract_state_dict
from bcssl_mm.utils.state_dict_remap import (check_output,
                                             converter_args_parser,
                                             load_source, remap, run_cli)


def get_args_parser() -> argparse.ArgumentParser:
    parser = converter_args_parser(
        __doc__, 'DINO, SelfPatch, MoCo v3, MAE or D-MAE-Lite checkpoint of '
        'bcssl_mm (mmengine)', 'output backbone checkpoint')
    parser.add_argument(
        '--part',
        choices=PARTS,
        help='which backbone to extract: DINO teacher (default: what DINO '
        'evaluates and transfers) or student; MoCo v3 base (default: what '
        "official MoCo v3's main_lincls.py and convert_to_deit.py load) or "
        'momentum; MAE / D-MAE-Lite encoder (default) or teacher')
    parser.add_argument(
        '--config',
        help='the pretraining config: load the output strictly into its '
        'model.backbone before saving (any backbone; without it only a '
        'BC-SSL / ConvNeXt backbone is checked)')
    return parser


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    if args.config is not None and not osp.isfile(args.config):
        raise FileNotFoundError(f'--config {args.config}: no such file')
    checkpoint = load_source(args.src)
    state_dict = extract_state_dict(checkpoint)
    algorithm = detect_algorithm(state_dict, args.src, checkpoint)
    part = algorithm.check_part(args.part, state_dict, args.src)

    print(f'{args.src} ({algorithm.title}, {part}) -> {args.dst}')
    out, summary = remap(state_dict, algorithm.part_rules(part), args.src)
    summary.print()
    meta = dict(
        source=osp.abspath(args.src),
        converter='extract_backbone',
        algorithm=algorithm.name,
        part=part,
        **source_meta(checkpoint))
    save_backbone_part(
        out,
        args.dst,
        meta,
        args.src,
        config_key=algorithm.config_key(part),
        config=args.config,
        force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
