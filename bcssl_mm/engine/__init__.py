from .hooks import (DINOHook, KNNMonitorHook, LinearProbeResultHook,
                    MoCoV3Hook, RNGStateHook)
from .optimizers import (DINOAmpOptimWrapper, DINOOptimWrapper,
                         SelfSupOptimWrapperConstructor)

__all__ = [
    'DINOHook', 'KNNMonitorHook', 'LinearProbeResultHook', 'MoCoV3Hook',
    'RNGStateHook', 'DINOOptimWrapper', 'DINOAmpOptimWrapper',
    'SelfSupOptimWrapperConstructor'
]
