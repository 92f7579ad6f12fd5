from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 DINOOptimWrapperConstructor,
                                 clip_grad_per_tensor_)
from .selfsup_constructor import SelfSupOptimWrapperConstructor

__all__ = [
    'DINOOptimWrapper', 'DINOAmpOptimWrapper', 'DINOOptimWrapperConstructor',
    'SelfSupOptimWrapperConstructor', 'clip_grad_per_tensor_'
]
