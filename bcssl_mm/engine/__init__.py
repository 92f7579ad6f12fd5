from .hooks import DINOHook, LinearProbeResultHook, RNGStateHook
from .optimizers import DINOAmpOptimWrapper, DINOOptimWrapper

__all__ = [
    'DINOHook', 'LinearProbeResultHook', 'RNGStateHook', 'DINOOptimWrapper',
    'DINOAmpOptimWrapper'
]
