from .dist import setup_cpu_distributed
from .torch_load import (MMENGINE_SAFE_GLOBALS, NAMESPACE_SAFE_GLOBALS,
                         CheckpointLoadError, load_from_local,
                         register_local_checkpoint_loader)

__all__ = [
    'CheckpointLoadError', 'MMENGINE_SAFE_GLOBALS', 'NAMESPACE_SAFE_GLOBALS',
    'load_from_local', 'register_local_checkpoint_loader',
    'setup_cpu_distributed'
]
