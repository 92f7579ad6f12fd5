"""timm entry points for the BC-SSL backbone, for use outside OpenMMLab.

Paper: "The Counterattack of CNNs in Self-Supervised Learning: Larger Kernel
Size might be All You Need" (https://arxiv.org/abs/2312.05695).

A thin adapter, not a second implementation: :class:`BCSSLConvNeXtTimm` holds
a :class:`~bcssl_mm.models.backbones.BCSSLConvNeXt` (blocks, stem and final
norm) and adds a linear classifier and timm's model API (``forward_features``,
``forward_head``, ``reset_classifier``, ``pretrained_cfg``, ...). Importing
this module registers ``bcssl_convnext_{atto,tiny,small,base}`` with timm::

    import timm
    import bcssl_mm.models.timm_models  # noqa: F401

    model = timm.create_model('bcssl_convnext_tiny', kernel_size=7,
                              num_classes=100)

Parameters are named ``backbone.*`` (as in ``BCSSLConvNeXt``) and
``head.fc.*`` (as in mmpretrain's ``LinearClsHead``): the state dict of an
mmpretrain ``ImageClassifier(backbone=BCSSLConvNeXt, head=LinearClsHead)``
loads strictly, and so does a ``backbone.*`` one with ``num_classes=0``.
"""
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import initialize
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models import register_model

from .backbones.bcssl_convnext import BCSSLConvNeXt, BCSSLConvNeXtBlock

__all__ = ['BCSSLConvNeXtTimm']


class BCSSLConvNeXtTimm(nn.Module):
    """``BCSSLConvNeXt`` with a linear classifier and timm's model API.

    Paper: https://arxiv.org/abs/2312.05695.

    ``forward(x)`` is ``head(backbone(x)[0])``: the last stage's output is
    globally average pooled, then normed by the backbone's final norm, then
    classified.

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
        global_pool (str): Pooling before the head; only 'avg' is supported.
            Defaults to 'avg'.
        drop_rate (float): Dropout before the classifier. Defaults to 0.
        drop_path_rate (float): Maximum stochastic depth rate. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale. Defaults to 1e-6.
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
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        _check_global_pool(global_pool)
        self.backbone = BCSSLConvNeXt(
            arch,
            kernel_size=kernel_size,
            dw_norm_cfg=dw_norm_cfg or None,
            in_channels=in_chans,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
            out_indices=-1,
            gap_before_final_norm=True)
        # NOTE: the backbone's own init_cfg (truncated normal convs and
        # linears, unit norms) applied through mmengine's ``initialize``, not
        # ``init_weights``, which logs every parameter when no log file is set
        initialize(self.backbone, self.backbone.init_cfg)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = self.backbone.channels[-1]
        # NOTE: the classifier is ``head.fc`` (not timm ConvNeXt's ``head``
        # with its own norm) so that mmpretrain ``LinearClsHead`` weights load
        # as they are; the final norm stays in the backbone.
        self.head = nn.Sequential(
            OrderedDict(
                drop=nn.Dropout(drop_rate),
                fc=self._build_fc(num_classes)))

    @property
    def final_norm(self) -> nn.Module:
        """The backbone's output norm, applied after global pooling."""
        return getattr(self.backbone, f'norm{self.backbone.num_stages - 1}')

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
            global_pool (str, optional): Only ``None`` (unchanged) or 'avg'.
        """
        if global_pool is not None:
            _check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = next(self.backbone.parameters())
        self.head.fc = self._build_fc(num_classes).to(
            device=ref.device, dtype=ref.dtype)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn gradient checkpointing of every block on or off."""
        for m in self.backbone.modules():
            if isinstance(m, BCSSLConvNeXtBlock):
                m.with_cp = enable

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
            torch.Tensor: (N, num_classes), or (N, C) with ``pre_logits``.
        """
        # the same ops, in the same order, as BCSSLConvNeXt.forward with
        # gap_before_final_norm=True
        x = x.mean([-2, -1], keepdim=True)  # (N, C, 1, 1)
        x = self.final_norm(x).flatten(1)  # (N, C)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def switch_to_deploy(self) -> None:
        """Fold every depthwise BN into its conv (inference only)."""
        self.backbone.switch_to_deploy()


def _check_global_pool(global_pool: str) -> None:
    if global_pool != 'avg':
        raise ValueError('BCSSLConvNeXtTimm: only global_pool="avg" is '
                         f'supported, got {global_pool!r}')


def _create_bcssl_convnext(variant: str, arch: str, pretrained: bool = False,
                           **kwargs: Any) -> BCSSLConvNeXtTimm:
    if pretrained:
        raise ValueError(
            f'{variant}: no pretrained weights are published for BC-SSL. '
            f'Create the model with pretrained=False and load a state dict '
            f'(e.g. one converted from a DINO checkpoint; keys "backbone.*" '
            f'and "head.fc.*") with model.load_state_dict(state_dict), or '
            f'pass checkpoint_path=... to timm.create_model.')
    if kwargs.pop('features_only', False):
        raise ValueError(
            f'{variant}: features_only is not supported; for multi-scale '
            f'features use bcssl_mm.models.BCSSLConvNeXt(out_indices=(0, 1, '
            f'2, 3), gap_before_final_norm=False).')
    # timm's create_model also passes pretrained_cfg, pretrained_cfg_overlay
    # and cache_dir (and pretrained_model_args for hub models):
    # build_model_with_cfg consumes them and sets model.pretrained_cfg.
    return build_model_with_cfg(
        BCSSLConvNeXtTimm, variant, pretrained, arch=arch, **kwargs)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000,
        'input_size': (3, 224, 224),
        'pool_size': (7, 7),  # 224 / 32
        'crop_pct': 0.875,
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
