"""Layer-wise learning-rate decay for a model whose backbone knows its depth.
"""
from functools import partial
from typing import Callable, List, Optional

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-wise lr decay for detectors and other models.

    mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the model
    itself for ``get_layer_depth`` (mmpretrain classifiers have one; mmdet
    detectors do not). This one asks ``model.backbone``, with the prefix
    ``'backbone.'``, so that parameters outside the backbone (neck, heads)
    get the last depth, i.e. the full lr. Everything else, including
    ``paramwise_cfg`` (``layer_decay_rate``, ``norm_decay_mult``,
    ``bias_decay_mult``, ``flat_decay_mult``, ``custom_keys``), is
    mmpretrain's: a parameter at depth ``d`` of ``n`` gets
    ``lr * layer_decay_rate ** (n - d - 1)``. For mmpretrain's
    ``VisionTransformer`` (``n = num_layers + 2``): ``patch_embed``,
    ``cls_token`` and ``pos_embed`` are depth 0, block ``i`` is ``i + 1``,
    the rest ``n - 1``: ViTDet's layer-wise decay (Li et al. 2022,
    https://arxiv.org/abs/2203.16527, Appendix A.2; detectron2's
    ``get_vit_lr_decay_rate``). Registered in mmdet's
    ``OPTIM_WRAPPER_CONSTRUCTORS``.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add ``module``'s parameters to ``params`` with their lr and decay.

        Args:
            params (list[dict]): The param groups, extended in place.
            module (nn.Module): The model (at the top call) or a submodule.
            prefix (str): The module's name prefix.
            get_layer_depth (Callable, optional): Maps a parameter name to
                ``(depth, num_depths)``; at the top call, taken from the
                model or else from ``model.backbone``.
        """
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    f'{type(self).__name__}: neither {type(module).__name__} '
                    f'nor its backbone ({type(backbone).__name__}) has '
                    'get_layer_depth(), which layer-wise lr decay needs')
            get_layer_depth = partial(
                backbone.get_layer_depth, prefix=prefix + 'backbone.')
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
