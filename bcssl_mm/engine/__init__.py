from .hooks import DINOHook, RNGStateHook
from .optimizers import DINOAmpOptimWrapper, DINOOptimWrapper

__all__ = [
    'DINOHook', 'RNGStateHook', 'DINOOptimWrapper', 'DINOAmpOptimWrapper'
]
