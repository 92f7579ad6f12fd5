from .dist import setup_cpu_distributed
from .torch_load import load_from_local, register_local_checkpoint_loader

__all__ = [
    'load_from_local', 'register_local_checkpoint_loader',
    'setup_cpu_distributed'
]
