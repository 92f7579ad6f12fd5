"""timm entry points for the BC-SSL backbone, for use outside OpenMMLab.

Paper: "The Counterattack of CNNs in Self-Supervised Learning: Larger Kernel
Size might be All You Need" (https://arxiv.org/abs/2312.05695).

A thin adapter, not a second implementation: :class:`BCSSLConvNeXtTimm` holds
a :class:`~bcssl_mm.models.backbones.BCSSLConvNeXt` (blocks, stem and final
norm) and adds a linear classifier and timm's model API (``forward_features``,
``forward_head``, ``reset_classifier``, ``pretrained_cfg``, ``feature_info``,
``forward_intermediates``, ``prune_intermediate_layers``, ...). Importing
this module registers ``bcssl_convnext_{atto,tiny,small,base}`` with timm::

    import timm
    import bcssl_mm.models.timm_models  # noqa: F401

    model = timm.create_model('bcssl_convnext_tiny', kernel_size=7,
                              num_classes=100)
    stages = timm.create_model('bcssl_convnext_tiny', features_only=True)

The models pass timm's own model tests (``test_timm_upstream_suite.py``):
``torch.jit.script``, ``torch.fx`` tracing, ``features_only``, creation on
the meta device, pruning.

Parameters are named ``backbone.*`` (as in ``BCSSLConvNeXt``) and
``head.fc.*`` (as in mmpretrain's ``LinearClsHead``): the state dict of an
mmpretrain ``ImageClassifier(backbone=BCSSLConvNeXt, head=LinearClsHead)``
loads strictly, and so does a ``backbone.*`` one with ``num_classes=0``.
"""
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import initialize
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import (build_model_with_cfg, generate_default_cfgs,
                         register_model)
from timm.models._features import FeatureGetterNet, feature_take_indices
from torch.nn.modules.batchnorm import _BatchNorm

from .backbones.bcssl_convnext import BCSSLConvNeXt, BCSSLConvNeXtBlock

__all__ = ['BCSSLConvNeXtTimm', 'BCSSLFeatureGetterNet', 'GlobalPoolError']

# 'avg': the paper's head (global average pool, final norm, linear);
# '': no pooling (timm's API): the final norm and the classifier act on every
# position of the last feature map
GLOBAL_POOLS = ('avg', '')


class GlobalPoolError(ValueError, AssertionError):
    """A ``global_pool`` the model does not offer.

    A ``ValueError``, and also an ``AssertionError`` because timm's models
    assert on their pool types and timm's tools (and tests) catch that.
    """


class BCSSLConvNeXtTimm(nn.Module):
    """``BCSSLConvNeXt`` with a linear classifier and timm's model API.

    Paper: https://arxiv.org/abs/2312.05695.

    ``forward(x)`` is ``head(backbone(x)[0])``: the last stage's output is
    globally average pooled, then normed by the backbone's final norm, then
    classified. Besides ``forward_features`` / ``forward_head`` the model has
    timm's ``feature_info``, ``forward_intermediates`` and
    ``prune_intermediate_layers`` (hence ``features_only=True``), and its
    forward compiles with ``torch.jit.script`` and traces with ``torch.fx``.

    Args:
        arch (str | dict): ``BCSSLConvNeXt`` arch ('atto', ..., 'tiny',
            'small', 'base', ...) or a dict with ``depths`` and ``channels``.
            Defaults to 'tiny'.
        kernel_size (int): Depthwise kernel, any odd value >= 3. Defaults to 9.
        dw_norm_cfg (dict | bool, optional): Norm after each depthwise conv;
            ``None`` or ``False`` gives plain ConvNeXt (``timm.create_model``
            drops keyword arguments that are ``None``, so pass ``False``
            there). Defaults to ``dict(type='BN')``.
        in_chans (int): Input image channels. Defaults to 3.
        num_classes (int): Classes of the linear head; 0 replaces the head by
            an identity (the model then returns pooled, normed features).
            Defaults to 1000.
        global_pool (str): Pooling before the final norm: 'avg', or '' for
            none (the output is then a normed (N, C, h, w) map, or per-pixel
            logits (N, num_classes, h, w)). Defaults to 'avg'.
        drop_rate (float): Dropout before the classifier. Defaults to 0.
        drop_path_rate (float): Maximum stochastic depth rate. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale. Defaults to 1e-6.
        device (torch.device | str, optional): Where the parameters are
            created (``'meta'`` allocates nothing). Defaults to the current
            default device.
        dtype (torch.dtype, optional): Floating point type of the parameters
            and buffers. Defaults to the current default dtype.
    """

    def __init__(self,
                 arch: Union[str, Dict[str, Sequence[int]]] = 'tiny',
                 kernel_size: int = 9,
                 dw_norm_cfg: Union[dict, bool, None] = dict(type='BN'),
                 in_chans: int = 3,
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 device: Union[torch.device, str, None] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        _check_global_pool(global_pool)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.layer_scale_init_value = layer_scale_init_value
        with torch.device(device) if device is not None else nullcontext():
            self.backbone = BCSSLConvNeXt(
                arch,
                in_channels=in_chans,
                drop_path_rate=drop_path_rate,
                layer_scale_init_value=layer_scale_init_value,
                out_indices=-1,
                gap_before_final_norm=True,
                kernel_size=kernel_size,
                dw_norm_cfg=dw_norm_cfg or None)
            # the backbone's init_cfg, as in init_weights
            initialize(self.backbone, self.backbone.init_cfg)
            channels = self.backbone.channels
            self.num_features = self.head_hidden_size = channels[-1]
            # NOTE: the classifier is ``head.fc`` (not timm ConvNeXt's
            # ``head`` with its own norm) so that mmpretrain
            # ``LinearClsHead`` weights load as they are; the final norm
            # stays in the backbone.
            self.head = nn.Sequential(
                OrderedDict(
                    drop=nn.Dropout(drop_rate),
                    fc=self._build_fc(num_classes)))
        # NOTE: ``final_norm`` is the backbone's ``norm{last}`` under a second
        # name that TorchScript can reach (it cannot index ``norm{i}``); the
        # state dict keeps only the backbone's name, as in mmpretrain's
        # checkpoints
        self._final_norm_key = f'backbone.norm{self.backbone.num_stages - 1}'
        self.final_norm = self.get_submodule(self._final_norm_key)
        self.register_state_dict_post_hook(_drop_final_norm_alias)
        self.register_load_state_dict_pre_hook(_fill_final_norm_alias)
        stride = self.backbone.downsample_layers[0][0].stride[0]
        self.feature_info = [
            dict(
                num_chs=c,
                reduction=stride * 2**i,
                module=f'backbone.stages.{i}') for i, c in enumerate(channels)
        ]
        if dtype is not None:
            self.to(dtype=dtype)

    def init_weights(self) -> None:
        """Initialise every parameter and buffer as at construction.

        For a model created on the ``'meta'`` device and materialised with
        ``to_empty``: the backbone's ``init_cfg`` (truncated normal convs and
        linears, unit norms), layer scales, BN statistics and classifier.
        """
        # NOTE: the init_cfg applied through mmengine's ``initialize``, not
        # BaseModule.init_weights, which logs every parameter when no log
        # file is set
        initialize(self.backbone, self.backbone.init_cfg)
        with torch.no_grad():
            for m in self.backbone.modules():
                if isinstance(m, _BatchNorm):
                    m.reset_running_stats()
                elif (isinstance(m, BCSSLConvNeXtBlock)
                      and isinstance(m.gamma, nn.Parameter)):
                    m.gamma.fill_(self.layer_scale_init_value)
            fc = self.head.fc
            if isinstance(fc, nn.Linear):
                trunc_normal_(fc.weight, std=.02)
                nn.init.zeros_(fc.bias)

    def _build_fc(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes)
        trunc_normal_(fc.weight, std=.02)
        nn.init.zeros_(fc.bias)
        return fc

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """Return the final linear layer (identity when num_classes is 0)."""
        return self.head.fc

    def reset_classifier(self,
                         num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """Replace the classifier by a new one for ``num_classes`` classes.

        Args:
            num_classes (int): New number of classes; 0 removes the
                classifier.
            global_pool (str, optional): 'avg', '' (no pooling) or ``None``
                (unchanged). Defaults to None.
        """
        if global_pool is not None:
            _check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = next(self.backbone.parameters())
        with torch.device(ref.device):
            fc = self._build_fc(num_classes)
        self.head.fc = fc.to(dtype=ref.dtype).train(self.training)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn gradient checkpointing of every block on or off."""
        for m in self.backbone.modules():
            if isinstance(m, BCSSLConvNeXtBlock):
                m.with_cp = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Parameter groups for timm's layer-wise learning rate decay: the
        stem, then each stage (its downsampling layer and blocks), then the
        final norm; the classifier comes last."""
        return dict(
            stem=r'^backbone\.downsample_layers\.0\.',
            blocks=r'^backbone\.(?:downsample_layers|stages)\.(\d+)'
            if coarse else [
                (r'^backbone\.downsample_layers\.(\d+)', (0, )),
                (r'^backbone\.stages\.(\d+)\.(\d+)', None),
                (r'^backbone\.norm\d+', (99999, )),
            ])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature map, before pooling and norm.

        Args:
            x (torch.Tensor): Images, (N, C_in, H, W).

        Returns:
            torch.Tensor: (N, C, H / 32, W / 32).
        """
        for downsample, stage in zip(self.backbone.downsample_layers,
                                     self.backbone.stages):
            x = stage(downsample(x))
        return x

    def forward_head(self,
                     x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        """Pool, norm and classify the output of :meth:`forward_features`.

        Args:
            x (torch.Tensor): (N, C, h, w).
            pre_logits (bool): Return the pooled, normed features (N, C)
                instead of the logits. Defaults to False.

        Returns:
            torch.Tensor: (N, num_classes), or (N, C) with ``pre_logits``;
            with ``global_pool=''`` (N, num_classes, h, w) or (N, C, h, w).
        """
        if self.global_pool == 'avg':
            # the same ops, in the same order, as BCSSLConvNeXt.forward with
            # gap_before_final_norm=True
            x = x.mean([-2, -1], keepdim=True)  # (N, C, 1, 1)
            x = self.final_norm(x).flatten(1)  # (N, C)
            return x if pre_logits else self.head(x)
        x = self.final_norm(x)  # (N, C, h, w)
        if pre_logits:
            return x
        x = self.head(x.permute(0, 2, 3, 1))  # (N, h, w, num_classes)
        return x.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Return stage outputs along with the final feature map.

        Args:
            x (torch.Tensor): Images, (N, C_in, H, W).
            indices (int | list[int], optional): Stages to return: the last
                ``n`` if an int, those listed (negative from the end) if a
                list, all if ``None``. Defaults to None.
            norm (bool): Apply the final norm to the last stage's output (the
                only one it is sized for). Defaults to False.
            stop_early (bool): Run no stage after the last one taken.
                Defaults to False.
            output_fmt (str): Only 'NCHW'. Defaults to 'NCHW'.
            intermediates_only (bool): Return only the stage outputs.
                Defaults to False.

        Returns:
            list[torch.Tensor] | tuple: The stage outputs, (N, C_i,
            H / (4 * 2^i), W / (4 * 2^i)), or ``(features, outputs)`` where
            ``features`` is what :meth:`forward_features` returns (the last
            stage run's output).
        """
        if output_fmt != 'NCHW':
            raise ValueError('BCSSLConvNeXtTimm.forward_intermediates: '
                             'output_fmt must be "NCHW", got ' + output_fmt)
        num_stages = len(self.backbone.stages)
        take_indices, max_index = feature_take_indices(num_stages, indices)
        downsample_layers = self.backbone.downsample_layers
        stages = self.backbone.stages
        if stop_early and not torch.jit.is_scripting():
            # NOTE: TorchScript cannot slice a ModuleList by a variable
            downsample_layers = downsample_layers[:max_index + 1]
            stages = stages[:max_index + 1]
        intermediates = []
        for i, (downsample,
                stage) in enumerate(zip(downsample_layers, stages)):
            x = stage(downsample(x))  # (N, C_i, H / (4 * 2^i), W / ...)
            if i in take_indices:
                if norm and i == num_stages - 1:
                    intermediates.append(self.final_norm(x))
                else:
                    intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and what follows).

        The final norm goes with ``prune_norm`` or when stages are dropped
        (it is sized for the last stage); the classifier and pooling go with
        ``prune_head`` or when stages are dropped. ``num_features`` becomes
        the width of the last stage kept.

        Args:
            indices (int | list[int]): Stages to keep, as in
                :meth:`forward_intermediates`. Defaults to 1.
            prune_norm (bool): Remove the final norm. Defaults to False.
            prune_head (bool): Remove the classifier and the pooling.
                Defaults to True.

        Returns:
            list[int]: The absolute indices of the stages taken.
        """
        num_stages = len(self.backbone.stages)
        take_indices, max_index = feature_take_indices(num_stages, indices)
        prune_end = max_index < num_stages - 1
        backbone = self.backbone
        backbone.downsample_layers = backbone.downsample_layers[:max_index + 1]
        backbone.stages = backbone.stages[:max_index + 1]
        if prune_norm or prune_end:
            norm = nn.Identity()
            setattr(backbone, self._final_norm_key.split('.')[-1], norm)
            self.final_norm = norm
        if prune_end:
            self.num_features = self.head_hidden_size = \
                self.feature_info[max_index]['num_chs']
        if prune_head or prune_end:
            self.reset_classifier(0, '')
        return take_indices

    def switch_to_deploy(self) -> None:
        """Fold every depthwise BN into its conv (inference only)."""
        self.backbone.switch_to_deploy()


class BCSSLFeatureGetterNet(FeatureGetterNet):
    """timm's ``FeatureGetterNet`` with ``set_grad_checkpointing``.

    The ``features_only=True`` form of the ``bcssl_convnext_*`` models: the
    model pruned to the stages asked for, run through
    ``forward_intermediates``. timm's ``FeatureListNet`` (its ConvNeXt's
    wrapper) has ``set_grad_checkpointing``, ``FeatureGetterNet`` has not.
    """

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn gradient checkpointing of the wrapped model on or off."""
        self.model.set_grad_checkpointing(enable)


def _drop_final_norm_alias(module: BCSSLConvNeXtTimm, state_dict: dict,
                           prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + 'final_norm.')]:
        del state_dict[key]


def _fill_final_norm_alias(module: BCSSLConvNeXtTimm, state_dict: dict,
                           prefix: str, *args: Any) -> None:
    # the alias loads the backbone's entries (into the same tensors)
    for name in module.final_norm.state_dict():
        source = f'{prefix}{module._final_norm_key}.{name}'
        if source in state_dict:
            state_dict.setdefault(f'{prefix}final_norm.{name}',
                                  state_dict[source])


def _check_global_pool(global_pool: str) -> None:
    if global_pool not in GLOBAL_POOLS:
        raise GlobalPoolError(
            f'BCSSLConvNeXtTimm: global_pool must be one of {GLOBAL_POOLS}, '
            f'got {global_pool!r}')


def _create_bcssl_convnext(variant: str,
                           arch: str,
                           pretrained: bool = False,
                           **kwargs: Any) -> BCSSLConvNeXtTimm:
    if pretrained:
        raise ValueError(
            f'{variant}: no pretrained weights are published for BC-SSL. '
            f'Create the model with pretrained=False and load a state dict '
            f'(e.g. one converted from a DINO checkpoint; keys "backbone.*" '
            f'and "head.fc.*") with model.load_state_dict(state_dict), or '
            f'pass checkpoint_path=... to timm.create_model.')
    # timm's create_model also passes pretrained_cfg, pretrained_cfg_overlay
    # and cache_dir (and pretrained_model_args for hub models):
    # build_model_with_cfg consumes them and sets model.pretrained_cfg.
    # features_only=True wraps the model in a FeatureGetterNet, which prunes
    # it to the stages asked for and calls forward_intermediates.
    return build_model_with_cfg(
        BCSSLConvNeXtTimm,
        variant,
        pretrained,
        feature_cfg={
            'out_indices': (0, 1, 2, 3),
            'feature_cls': BCSSLFeatureGetterNet,
            **kwargs.pop('feature_cfg', {})
        },
        arch=arch,
        **kwargs)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000,
        'input_size': (3, 224, 224),
        'pool_size': (7, 7),  # 224 / 32
        # evaluation as in the paper's protocol: resize 256, centre crop 224
        'crop_pct': 0.875,
        'crop_mode': 'center',
        'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'backbone.downsample_layers.0.0',
        'classifier': 'head.fc',
        'paper_ids': 'arXiv:2312.05695',
        'paper_name': 'The Counterattack of CNNs in Self-Supervised Learning: '
        'Larger Kernel Size might be All You Need',
        **kwargs
    }


default_cfgs = generate_default_cfgs({
    'bcssl_convnext_atto': _cfg(),
    'bcssl_convnext_tiny': _cfg(),
    'bcssl_convnext_small': _cfg(),
    'bcssl_convnext_base': _cfg(),
})


@register_model
def bcssl_convnext_atto(pretrained: bool = False,
                        **kwargs: Any) -> BCSSLConvNeXtTimm:
    """BC-SSL ConvNeXt-Atto (depths 2-2-6-2, widths 40-320), 9x9 kernels."""
    return _create_bcssl_convnext(
        'bcssl_convnext_atto', 'atto', pretrained=pretrained, **kwargs)


@register_model
def bcssl_convnext_tiny(pretrained: bool = False,
                        **kwargs: Any) -> BCSSLConvNeXtTimm:
    """BC-SSL ConvNeXt-T (depths 3-3-9-3, widths 96-768), 9x9 kernels."""
    return _create_bcssl_convnext(
        'bcssl_convnext_tiny', 'tiny', pretrained=pretrained, **kwargs)


@register_model
def bcssl_convnext_small(pretrained: bool = False,
                         **kwargs: Any) -> BCSSLConvNeXtTimm:
    """BC-SSL ConvNeXt-S (depths 3-3-27-3, widths 96-768), 9x9 kernels."""
    return _create_bcssl_convnext(
        'bcssl_convnext_small', 'small', pretrained=pretrained, **kwargs)


@register_model
def bcssl_convnext_base(pretrained: bool = False,
                        **kwargs: Any) -> BCSSLConvNeXtTimm:
    """BC-SSL ConvNeXt-B (depths 3-3-27-3, widths 128-1024), 9x9 kernels."""
    return _create_bcssl_convnext(
        'bcssl_convnext_base', 'base', pretrained=pretrained, **kwargs)
