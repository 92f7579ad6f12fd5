from .hooks import (DINOHook, KNNMonitorHook, LinearProbeResultHook,
                    RNGStateHook)
from .optimizers import DINOAmpOptimWrapper, DINOOptimWrapper

__all__ = [
    'DINOHook', 'KNNMonitorHook', 'LinearProbeResultHook', 'RNGStateHook',
    'DINOOptimWrapper', 'DINOAmpOptimWrapper'
]
