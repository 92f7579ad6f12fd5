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
import copy
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from bcssl_mm.models.backbones.bcssl_convnext import (
    infer_bcssl_convnext_cfg, save_bcssl_convnext_checkpoint)
from bcssl_mm.models.utils import (CheckpointMismatchError, extract_state_dict,
                                   load_state_dict_strict)
from bcssl_mm.utils.state_dict_remap import (ConversionError, Rule, StateDict,
                                             check_output,
                                             converter_args_parser, first_keys,
                                             load_source, remap, run_cli,
                                             save_checkpoint)


@dataclass(frozen=True)
class Algorithm:
    """Where a pretraining algorithm keeps each of its backbones.

    Args:
        name (str): The algorithm as ``meta['algorithm']`` records it.
        title (str): The algorithm in messages.
        marker (str): A key prefix that only this algorithm's checkpoints
            have; it identifies them.
        parts (dict): Part name -> prefix of that backbone's keys; the first
            part is the default.
    """
    name: str
    title: str
    marker: str
    parts: Dict[str, str]

    @property
    def default_part(self) -> str:
        return next(iter(self.parts))


ALGORITHMS = (
    Algorithm('dino', 'DINO', 'teacher.backbone.',
              dict(teacher='teacher.backbone.', student='backbone.')),
    Algorithm('mocov3', 'MoCo v3', 'momentum_encoder.backbone.',
              dict(base='backbone.', momentum='momentum_encoder.backbone.')),
    Algorithm('mae', 'MAE / D-MAE-Lite', 'neck.decoder_embed.',
              dict(encoder='backbone.', teacher='teacher.')),
)
PARTS = sorted({p for a in ALGORITHMS for p in a.parts})
# copied from the source checkpoint's meta, when present
META_KEYS = ('epoch', 'iter', 'experiment_name')


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


def detect_algorithm(state_dict: dict, source: str,
                     checkpoint: object) -> Algorithm:
    """The algorithm whose marker prefix starts some key of ``state_dict``.

    Raises:
        ConversionError: No algorithm's, or more than one's, naming the file
            and its first keys.
    """
    keys = list(state_dict) if isinstance(state_dict, dict) else []
    found = [
        a for a in ALGORITHMS if any(k.startswith(a.marker) for k in keys)
    ]
    if len(found) == 1:
        return found[0]
    expected = ' or '.join(f'{a.title} ({a.marker}*)' for a in ALGORITHMS)
    if found:
        raise ConversionError(
            f'{source}: keys of both {expected}; one algorithm per '
            'checkpoint expected')
    hint = ''
    if isinstance(checkpoint,
                  dict) and {'teacher', 'student'} <= set(checkpoint):
        hint = (" It looks like a checkpoint of the authors' DINO fork: "
                'use tools/model_converters/bcssl_fork_to_mmpretrain.py.')
    raise ConversionError(
        f'{source}: not a bcssl_mm pretraining checkpoint: no key of '
        f'{expected}; first keys: {first_keys(state_dict)}.{hint}')


def build_config_backbone(config: str, key: str = 'backbone') -> nn.Module:
    """Build ``model.<key>`` of ``config`` without its ``init_cfg``.

    Raises:
        ConversionError: The config has no ``model.<key>``, or it does
            not build.
    """
    cfg = Config.fromfile(config)
    backbone_cfg = cfg.get('model', {}).get(key)
    if not isinstance(backbone_cfg, dict):
        raise ConversionError(f'{config}: no model.{key} to check against')
    backbone_cfg = copy.deepcopy(backbone_cfg)
    # NOTE: built at its initialisation; the output is loaded into it next
    backbone_cfg.pop('init_cfg', None)
    scope = cfg.get('default_scope') or 'mmpretrain'
    try:
        with DefaultScope.overwrite_default_scope(scope):
            return MODELS.build(backbone_cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise ConversionError(f'{config}: model.{key} does not build: {e}')


def check_against_config(state_dict: StateDict,
                         config: str,
                         source: str,
                         dst: str,
                         key: str = 'backbone') -> None:
    """Load ``state_dict`` (``backbone.*``) strictly into ``model.<key>`` of
    ``config`` (the backbone; a D-MAE-Lite teacher: ``teacher``).

    Raises:
        ConversionError: Keys or shapes differ; the message lists them all.
    """
    backbone = build_config_backbone(config, key)
    name = type(backbone).__name__
    try:
        load_state_dict_strict(
            backbone, state_dict, source, prefix='backbone.')
    except CheckpointMismatchError as e:
        raise ConversionError(
            f'the extracted backbone does not load strictly into the {name} '
            f'of {config} (model.{key}); nothing was written to {dst}:\n'
            f'{e}') from None
    print(f'verified: loads strictly into the {name} of {config} '
          f"(model.{key}, load_state_dict_strict, prefix 'backbone.')")


def main(args: argparse.Namespace) -> None:
    check_output(args.dst, args.force)
    if args.config is not None and not osp.isfile(args.config):
        raise FileNotFoundError(f'--config {args.config}: no such file')
    checkpoint = load_source(args.src)
    state_dict = extract_state_dict(checkpoint)
    algorithm = detect_algorithm(state_dict, args.src, checkpoint)
    part = args.part or algorithm.default_part
    if part not in algorithm.parts:
        raise ConversionError(
            f'{args.src} is a {algorithm.title} checkpoint: --part is one of '
            f'{list(algorithm.parts)}, not {part!r}')
    prefix = algorithm.parts[part]
    if not any(k.startswith(prefix) for k in state_dict):
        raise ConversionError(
            f'{args.src}: no key starts with {prefix!r} (the {part} backbone '
            f'of a {algorithm.title} checkpoint); first keys: '
            f'{first_keys(state_dict)}')

    print(f'{args.src} ({algorithm.title}, {part}) -> {args.dst}')
    rules = [
        Rule(
            re.escape(prefix) + r'(.+)', r'backbone.\1',
            f'{prefix}* -> backbone.*'),
        Rule(r'.+', None, f'not the {part} backbone'),
    ]
    out, summary = remap(state_dict, rules, args.src)
    summary.print()

    src_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta: dict = dict(
        source=osp.abspath(args.src),
        converter='extract_backbone',
        algorithm=algorithm.name,
        part=part)
    if isinstance(src_meta, dict):
        meta.update({
            k: src_meta[k]
            for k in META_KEYS if isinstance(src_meta.get(k), (int, str))
        })
    if args.config is not None:
        key = 'teacher' if (algorithm.name,
                            part) == ('mae', 'teacher') else 'backbone'
        check_against_config(out, args.config, args.src, args.dst, key)
        meta['config'] = args.config
    if infer_bcssl_convnext_cfg(out) is not None:
        save_bcssl_convnext_checkpoint(
            out, args.dst, meta, args.src, force=args.force)
        return
    if args.config is None:
        print('not a BC-SSL / ConvNeXt backbone (no stages.i.j.'
              'depthwise_conv.weight): saved without a strict check; pass '
              '--config PRETRAINING_CONFIG to check it against its '
              'model.backbone')
    save_checkpoint(out, args.dst, meta, force=args.force)


if __name__ == '__main__':
    run_cli(main, get_args_parser())
