from .dino_optim_wrapper import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                 DINOOptimWrapperConstructor,
                                 clip_grad_per_tensor_)

__all__ = [
    'DINOOptimWrapper', 'DINOAmpOptimWrapper', 'DINOOptimWrapperConstructor',
    'clip_grad_per_tensor_'
]
