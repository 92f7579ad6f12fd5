from .backbone_layer_decay import BackboneLayerDecayOptimWrapperConstructor
from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 DINOOptimWrapperConstructor,
                                 clip_grad_per_tensor_)
from .lars import MoCoV3LARS
from .selfsup_constructor import SelfSupOptimWrapperConstructor

__all__ = [
    'BackboneLayerDecayOptimWrapperConstructor', 'DINOOptimWrapper',
    'DINOAmpOptimWrapper', 'DINOOptimWrapperConstructor', 'MoCoV3LARS',
    'SelfSupOptimWrapperConstructor', 'clip_grad_per_tensor_'
]
