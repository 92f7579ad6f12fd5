from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 DINOOptimWrapperConstructor,
                                 clip_grad_per_tensor_)
from .lars import MoCoV3LARS
from .selfsup_constructor import SelfSupOptimWrapperConstructor

__all__ = [
    'DINOOptimWrapper', 'DINOAmpOptimWrapper', 'DINOOptimWrapperConstructor',
    'MoCoV3LARS', 'SelfSupOptimWrapperConstructor', 'clip_grad_per_tensor_'
]
