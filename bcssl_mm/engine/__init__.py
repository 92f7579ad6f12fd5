from .hooks import DINOHook, KNNMonitorHook, RNGStateHook
from .optimizers import DINOAmpOptimWrapper, DINOOptimWrapper

__all__ = [
    'DINOHook', 'KNNMonitorHook', 'RNGStateHook', 'DINOOptimWrapper',
    'DINOAmpOptimWrapper'
]
