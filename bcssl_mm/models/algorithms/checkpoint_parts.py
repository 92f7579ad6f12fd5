"""Where each pretraining algorithm of the toolkit keeps its backbones.

The key prefixes of the parts of a DINO, SelfPatch, MoCo v3, MAE or
D-MAE-Lite state dict (:data:`ALGORITHMS`) and the steps that
``tools/model_converters/extract_backbone.py`` takes with them: tell the
algorithm from the keys (:func:`detect_algorithm`), rename one part to
``backbone.*`` (:meth:`Algorithm.part_rules`, rules of the engine in
``bcssl_mm/utils/state_dict_remap.py``) and save it after a strict check
(:func:`save_backbone_part`). The tables live beside the algorithms whose
attributes they name:

- :class:`~.DINO` (and :class:`~.SelfPatch`, a DINO): the student is
  ``backbone.*`` / ``neck.*``, the teacher ``teacher.backbone.*`` /
  ``teacher.neck.*``; SelfPatch adds ``[teacher.]aggregator.*``,
  ``[teacher.]patch_neck.*`` and ``patch_head.*``, dropped with the heads.
- :class:`~.BCSSLMoCoV3`: the base encoder is ``backbone.*`` / ``neck.*``,
  the momentum encoder ``momentum_encoder.backbone.*`` /
  ``momentum_encoder.neck.*``, the predictor ``head.predictor.*``.
- mmpretrain's ``MAE`` and :class:`~.DMAELite`: the encoder is
  ``backbone.*``, the decoder ``neck.*`` (``neck.decoder_embed.*`` marks
  them), the frozen teacher encoder ``teacher.*`` and the head adapter
  ``attn_adapter.*``.
"""
import copy
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from ...utils.state_dict_remap import (ConversionError, Rule, StateDict,
                                       first_keys, save_checkpoint)
from ..backbones.bcssl_convnext import (infer_bcssl_convnext_cfg,
                                        save_bcssl_convnext_checkpoint)
from ..utils import CheckpointMismatchError, load_state_dict_strict


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
        config_keys (dict): Part name -> the key of the pretraining config's
            ``model`` that builds it, where it is not ``backbone``.
    """
    name: str
    title: str
    marker: str
    parts: Dict[str, str]
    config_keys: Dict[str, str] = field(default_factory=dict)

    @property
    def default_part(self) -> str:
        return next(iter(self.parts))

    def config_key(self, part: str) -> str:
        """The key of ``model`` in the pretraining config that builds
        ``part``."""
        return self.config_keys.get(part, 'backbone')

    def check_part(self, part: Optional[str], state_dict: StateDict,
                   source: str) -> str:
        """``part`` (None: the default part), checked against this
        algorithm's parts and the keys of ``state_dict``.

        Raises:
            ConversionError: ``part`` is not one of this algorithm's, or no
                key of ``state_dict`` has its prefix.
        """
        part = part or self.default_part
        if part not in self.parts:
            raise ConversionError(
                f'{source} is a {self.title} checkpoint: --part is one of '
                f'{list(self.parts)}, not {part!r}')
        prefix = self.parts[part]
        if not any(k.startswith(prefix) for k in state_dict):
            raise ConversionError(
                f'{source}: no key starts with {prefix!r} (the {part} '
                f'backbone of a {self.title} checkpoint); first keys: '
                f'{first_keys(state_dict)}')
        return part

    def part_rules(self, part: str) -> List[Rule]:
        """Rules that rename ``part`` to ``backbone.*`` and drop the rest."""
        prefix = self.parts[part]
        return [
            Rule(
                re.escape(prefix) + r'(.+)', r'backbone.\1',
                f'{prefix}* -> backbone.*'),
            Rule(r'.+', None, f'not the {part} backbone'),
        ]


ALGORITHMS = (
    # DINO and SelfPatch (a DINO)
    Algorithm('dino', 'DINO', 'teacher.backbone.',
              dict(teacher='teacher.backbone.', student='backbone.')),
    Algorithm('mocov3', 'MoCo v3', 'momentum_encoder.backbone.',
              dict(base='backbone.', momentum='momentum_encoder.backbone.')),
    # mmpretrain's MAE and DMAELite, whose teacher is model.teacher
    Algorithm(
        'mae',
        'MAE / D-MAE-Lite',
        'neck.decoder_embed.',
        dict(encoder='backbone.', teacher='teacher.'),
        config_keys=dict(teacher='teacher')),
)
# every part of any algorithm: the choices of extract_backbone.py --part
PARTS = sorted({p for a in ALGORITHMS for p in a.parts})
# copied from the source checkpoint's meta, when present
META_KEYS = ('epoch', 'iter', 'experiment_name')


def detect_algorithm(state_dict: Any, source: str,
                     checkpoint: Any) -> Algorithm:
    """The algorithm whose marker prefix starts some key of ``state_dict``.

    Args:
        state_dict: The checkpoint's state dict.
        source (str): Its file, for messages.
        checkpoint: The whole checkpoint (an authors' DINO fork checkpoint is
            named as such).

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


def source_meta(checkpoint: Any) -> Dict[str, Any]:
    """The entries of :data:`META_KEYS` in the checkpoint's ``meta`` that
    hold an int or a string."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return {}
    return {
        k: meta[k]
        for k in META_KEYS if isinstance(meta.get(k), (int, str))
    }


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


def save_backbone_part(state_dict: StateDict,
                       filename: str,
                       meta: dict,
                       source: str,
                       config_key: str = 'backbone',
                       config: Optional[str] = None,
                       force: bool = False) -> None:
    """Save an extracted backbone (``backbone.*``) after its checks.

    With ``config``, ``state_dict`` must first load strictly into its
    ``model.<config_key>`` (:func:`check_against_config`). A BC-SSL /
    ConvNeXt backbone is in any case saved by
    ``save_bcssl_convnext_checkpoint`` (``bcssl_convnext.py``: a strict load
    into the ``BCSSLConvNeXt`` of its shapes); any other one without
    ``config`` is saved unchecked, and a line says so.

    Args:
        state_dict (dict): The backbone's tensors, keys ``backbone.*``.
        filename (str): Output path.
        meta (dict): Plain Python values describing the extraction;
            ``config`` is added to a copy when given.
        source (str): The source checkpoint, for messages.
        config_key (str): The key of the config's ``model`` that builds the
            part. Defaults to 'backbone'.
        config (str, optional): The pretraining config to check against.
        force (bool): Overwrite an existing ``filename``. Defaults to False.
    """
    meta = dict(meta)
    if config is not None:
        check_against_config(state_dict, config, source, filename, config_key)
        meta['config'] = config
    if infer_bcssl_convnext_cfg(state_dict) is not None:
        save_bcssl_convnext_checkpoint(
            state_dict, filename, meta, source, force=force)
        return
    if config is None:
        print('not a BC-SSL / ConvNeXt backbone (no stages.i.j.'
              'depthwise_conv.weight): saved without a strict check; pass '
              '--config PRETRAINING_CONFIG to check it against its '
              'model.backbone')
    save_checkpoint(state_dict, filename, meta, force=force)
