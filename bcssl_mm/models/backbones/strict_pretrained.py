"""Strict loading of ``init_cfg=dict(type='Pretrained', ...)`` for backbones.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs the
keys that do not match, so a checkpoint of the wrong architecture or with the
wrong prefix silently fine-tunes a partly random backbone.
:class:`StrictPretrainedMixin` gives a backbone an ``init_weights`` that loads
such a checkpoint strictly, with the error of
:func:`~bcssl_mm.models.utils.checkpoint.load_state_dict_strict` listing every
missing, unexpected and mis-shaped key.

The registered subclasses are mmpretrain's ResNet, Swin Transformer and
Vision Transformer, the classes the toolkit pretrains with, so that the
``backbone.*`` keys of a DINO teacher or a MoCo v3 base encoder match them
exactly; they are registered in mmdet's ``MODELS`` for detection transfer,
and the Vision Transformer also in mmpretrain's for fine-tuning.
"""
import inspect
from typing import List, Optional, Tuple, Union

from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.logging import MMLogger
from mmpretrain.models.backbones import (ResNet, SwinTransformer,
                                         VisionTransformer)
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ..utils.checkpoint import (PREFIX_HINT, check_state_dict_strict,
                                load_state_dict_strict,
                                read_backbone_checkpoint)

InitCfg = Optional[Union[dict, List[dict]]]


def split_pretrained_cfg(init_cfg: InitCfg) -> Tuple[Optional[dict], list]:
    """Split an ``init_cfg`` into its ``Pretrained`` entry and the others.

    Args:
        init_cfg (dict | list[dict], optional): A module's ``init_cfg``.

    Returns:
        tuple: ``(pretrained, others)``: the ``Pretrained`` dict (or ``None``)
        and the list of the other initialisers.

    Raises:
        ValueError: More than one ``Pretrained`` entry.
    """
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or [])
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(
            f'init_cfg has {len(pretrained)} Pretrained entries, at most one '
            f'is allowed: {init_cfg}')
    others = [c for c in cfgs if c.get('type') != 'Pretrained']
    return (pretrained[0] if pretrained else None), others


class StrictPretrainedMixin:
    """Load a ``Pretrained`` ``init_cfg`` strictly in ``init_weights``.

    Put it before an mmengine ``BaseModule`` class in the bases. With
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``,
    ``init_weights``:

    1. reads the checkpoint and checks it against the module's state dict
       (keys and shapes; prefix stripped), failing with the list of every
       missing, unexpected and mis-shaped key before anything changes;
    2. initialises the module randomly as it would without a checkpoint: the
       other entries of a list ``init_cfg``, else the class's default
       ``init_cfg``, then each submodule's ``init_weights``;
    3. loads the checkpoint.

    This is the order of mmengine's ``BaseModule.init_weights``, which runs
    the other initialisers and the children's ``init_weights`` before
    ``Pretrained``; only the load differs (strict here). Keys with a prefix
    of :meth:`allow_missing_keys` may be absent from the checkpoint and keep
    their random initialisation; checkpoint keys with a prefix of
    :meth:`ignore_unexpected_keys` are dropped before the check (and
    logged). Both are none unless a subclass says otherwise.
    """

    def allow_missing_keys(self) -> Tuple[str, ...]:
        """Key prefixes a checkpoint may lack, e.g. output norms that a
        classification backbone does not have. Defaults to none."""
        return ()

    def ignore_unexpected_keys(self) -> Tuple[str, ...]:
        """Key prefixes a checkpoint may have that the module was built
        without (e.g. a final norm it does not apply); they are not loaded.
        Defaults to none."""
        return ()

    def init_weights(self) -> None:
        """Initialise, or load ``init_cfg.checkpoint`` strictly if Pretrained.
        """
        pretrained, others = split_pretrained_cfg(self.init_cfg)
        if pretrained is None:
            super().init_weights()
            return
        filename = pretrained.get('checkpoint')
        state_dict = read_backbone_checkpoint(
            filename, pretrained.get('map_location', 'cpu'))
        state_dict = self._drop_ignored_keys(state_dict,
                                             pretrained.get('prefix'))
        load_args = dict(
            source=filename,
            prefix=pretrained.get('prefix'),
            allow_missing=self.allow_missing_keys(),
            prefix_hint=PREFIX_HINT)
        check_state_dict_strict(self, state_dict, **load_args)

        init_cfg = self.init_cfg
        # NOTE: without the Pretrained entry, upstream init_weights (e.g.
        # mmpretrain ViT's pos_embed, ResNet's zero_init_residual) also
        # run their random-init steps, as they would without a checkpoint
        self.init_cfg = others or self.default_init_cfg()
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        load_state_dict_strict(
            self,
            state_dict,
            logger=MMLogger.get_current_instance(),
            **load_args)

    def _drop_ignored_keys(self, state_dict: dict,
                           prefix: Optional[str]) -> dict:
        """``state_dict`` without the keys of :meth:`ignore_unexpected_keys`
        (after ``prefix``); the dropped keys are logged."""
        ignored = self.ignore_unexpected_keys()
        if not ignored:
            return state_dict
        if prefix and not prefix.endswith('.'):
            prefix += '.'
        ignored = tuple((prefix or '') + k for k in ignored)
        dropped = [k for k in state_dict if k.startswith(ignored)]
        if dropped:
            MMLogger.get_current_instance().info(
                f'{type(self).__name__} was built without these checkpoint '
                f'tensors, not loaded: {dropped}')
        return {k: v for k, v in state_dict.items() if k not in dropped}

    @classmethod
    def default_init_cfg(cls) -> InitCfg:
        """The ``init_cfg`` default of the class's ``__init__``."""
        param = inspect.signature(cls.__init__).parameters.get('init_cfg')
        if param is None or param.default is inspect.Parameter.empty:
            return None
        return param.default


@MMDET_MODELS.register_module()
class StrictResNet(StrictPretrainedMixin, ResNet):
    """mmpretrain's ``ResNet`` whose ``Pretrained`` ``init_cfg`` loads
    strictly (:class:`StrictPretrainedMixin`).

    Paper: https://arxiv.org/abs/1512.03385. Every argument is mmpretrain
    ``ResNet``'s. Registered in mmdet's ``MODELS`` (mmdet has its own
    ``ResNet``, whose names are the same but which is not the pretrained
    class).
    """


@MMDET_MODELS.register_module()
class StrictSwinTransformer(StrictPretrainedMixin, SwinTransformer):
    """mmpretrain's ``SwinTransformer`` whose ``Pretrained`` ``init_cfg``
    loads strictly (:class:`StrictPretrainedMixin`).

    Paper: https://arxiv.org/abs/2103.14030. Every argument is mmpretrain
    ``SwinTransformer``'s. The output norms ``norm{i}`` of ``out_indices``
    may be absent from the checkpoint: a classification or DINO backbone has
    only ``norm3``. Registered in mmdet's ``MODELS`` (mmdet's own
    ``SwinTransformer`` uses other parameter names).
    """

    def allow_missing_keys(self) -> Tuple[str, ...]:
        return tuple(f'norm{i}.' for i in self.out_indices)


@MMDET_MODELS.register_module()
@MMPRETRAIN_MODELS.register_module()
class StrictVisionTransformer(StrictPretrainedMixin, VisionTransformer):
    """mmpretrain's ``VisionTransformer`` whose ``Pretrained`` ``init_cfg``
    loads strictly (:class:`StrictPretrainedMixin`).

    Paper: https://arxiv.org/abs/2010.11929. Every argument is mmpretrain
    ``VisionTransformer``'s. The position embedding is checked against the
    model's own shape, which ``img_size`` sets: keep the pretraining
    ``img_size`` (224); mmpretrain resizes the embedding to the input's grid
    in ``forward``. Registered in mmdet's and mmpretrain's ``MODELS``.

    Two exceptions follow from the arguments, as in official MAE
    fine-tuning with global pooling (https://arxiv.org/abs/2111.06377;
    its ``main_finetune.py`` asserts that the head and ``fc_norm`` are the
    only missing keys, and its model has no final norm to take the
    encoder's): with ``out_type='avg_featmap'`` the norm of the pooled
    feature ``ln2`` (MAE's ``fc_norm``) may be missing from the checkpoint,
    as a pretraining encoder has none; with ``final_norm=False`` the
    checkpoint's final norm ``ln1``, which such a model does not have, is
    dropped (and logged). Every other key must match.
    """

    def allow_missing_keys(self) -> Tuple[str, ...]:
        return ('ln2.', ) if self.out_type == 'avg_featmap' else ()

    def ignore_unexpected_keys(self) -> Tuple[str, ...]:
        return () if self.final_norm else ('ln1.', )
