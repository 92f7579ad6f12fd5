from .backbone_layer_decay import BackboneLayerDecayOptimWrapperConstructor
from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 DINOOptimWrapperConstructor,
                                 clip_grad_per_tensor_)

__all__ = [
    'BackboneLayerDecayOptimWrapperConstructor', 'DINOOptimWrapper',
    'DINOAmpOptimWrapper', 'DINOOptimWrapperConstructor',
    'clip_grad_per_tensor_'
]
