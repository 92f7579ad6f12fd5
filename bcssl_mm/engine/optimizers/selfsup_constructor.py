"""Parameter groups of self-supervised training: the online network only,
and one rule for every parameter of at most one dimension."""
from typing import List, Optional

import torch
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SelfSupOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor over the online network only, with an
    optional rule for all parameters of at most one dimension.

    The momentum encoder (``model.teacher`` of DINO,
    ``model.momentum_encoder`` of MoCo v3) is an EMA of the online network
    and never optimized; leaving it out keeps its parameters out of the
    optimizer's groups (and hundreds of "skipped since
    requires_grad=False" warnings out of the log).

    ``paramwise_cfg`` works as in mmengine, plus ``flat_cfg``: a dict of
    options (mmengine's ``lr_mult`` / ``decay_mult``, and any other key,
    such as ``lars_exclude`` of :class:`MoCoV3LARS` and mmpretrain's LARS)
    applied to every parameter with
    ``ndim <= 1`` (biases, norm weights, ConvNeXt's layer scale ``gamma``,
    BN parameters in any module), after and over mmengine's rules. It
    depends on shapes, not on module names, so it covers every backbone:
    official MoCo v3's LARS skips decay and adaptation for ``p.ndim == 1``,
    where mmpretrain's MoCo v3 config names ResNet modules (``bn``,
    ``bias``, ``downsample.1``) and misses ConvNeXt's ``norm``, ``gamma``
    and ``downsample_layers``. MoCo v3's ResNet-50 recipe:
    ``paramwise_cfg=dict(flat_cfg=dict(decay_mult=0., lars_exclude=True))``.

    Args:
        optim_wrapper_cfg (dict): As mmengine's.
        paramwise_cfg (dict, optional): As mmengine's, plus ``flat_cfg``.
    """

    # attributes of the algorithms that hold momentum encoders
    momentum_encoders = ('teacher', 'momentum_encoder')

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        self.flat_cfg = paramwise_cfg.pop('flat_cfg', None)
        if self.flat_cfg is not None and not isinstance(self.flat_cfg, dict):
            raise TypeError('optim_wrapper.paramwise_cfg.flat_cfg must be a '
                            f'dict, got {self.flat_cfg!r}')
        # mmengine hands model.parameters() (momentum encoder included) to
        # the optimizer when paramwise_cfg is empty; a non-empty one makes
        # it go through add_params
        if not paramwise_cfg:
            paramwise_cfg = dict(custom_keys={})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self,
                   params: List[dict],
                   module: torch.nn.Module,
                   prefix: str = '',
                   **kwargs) -> None:
        if prefix in self.momentum_encoders:
            return
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix or not self.flat_cfg:
            return
        # top level: every group now holds one parameter
        for group in params:
            if group['params'][0].ndim > 1:
                continue
            for key, value in self.flat_cfg.items():
                if key == 'lr_mult':
                    group['lr'] = self.base_lr * value
                elif key == 'decay_mult':
                    if self.base_wd is not None:
                        group['weight_decay'] = self.base_wd * value
                else:
                    group[key] = value
