from .dist import setup_cpu_distributed, teardown_distributed
from .fileio import AtomicLocalBackend, register_atomic_local_backend
from .resume import find_resume_checkpoint, is_complete_checkpoint
from .torch_load import (MMENGINE_SAFE_GLOBALS, NAMESPACE_SAFE_GLOBALS,
                         CheckpointLoadError, load_from_local,
                         register_local_checkpoint_loader,
                         register_remote_checkpoint_loaders)

__all__ = [
    'AtomicLocalBackend', 'CheckpointLoadError', 'MMENGINE_SAFE_GLOBALS',
    'NAMESPACE_SAFE_GLOBALS', 'find_resume_checkpoint',
    'is_complete_checkpoint', 'load_from_local',
    'register_atomic_local_backend', 'register_local_checkpoint_loader',
    'register_remote_checkpoint_loaders', 'setup_cpu_distributed',
    'teardown_distributed'
]
