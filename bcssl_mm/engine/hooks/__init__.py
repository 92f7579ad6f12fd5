from .dino_hook import DINOHook, teacher_temperature
from .knn_monitor_hook import KNNMonitorHook, monitored_backbone
from .linear_probe_result_hook import LinearProbeResultHook
from .lr_warmup_check_hook import LRWarmupCheckHook
from .mocov3_hook import MoCoV3Hook
from .momentum_hook import (MomentumScheduleHook, cosine_momentum,
                            plain_bn_running_stats)
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state

__all__ = [
    'DINOHook', 'KNNMonitorHook', 'LinearProbeResultHook', 'LRWarmupCheckHook',
    'MoCoV3Hook', 'MomentumScheduleHook', 'RNGStateHook', 'cosine_momentum',
    'get_rng_state', 'monitored_backbone', 'plain_bn_running_stats',
    'set_rng_state', 'teacher_temperature'
]
