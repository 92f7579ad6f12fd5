"""bcssl_mm: self-supervised large-kernel CNNs (BC-SSL) on OpenMMLab.

Importing the package registers its models and hooks in the mmengine, mmdet and
mmpretrain registries; configs do it with
``custom_imports = dict(imports=['bcssl_mm'], allow_failed_imports=False)``.
It also makes mmengine load checkpoints, local or remote, with
``weights_only=True`` (:mod:`bcssl_mm.utils.torch_load`) and write local files
atomically (:mod:`bcssl_mm.utils.fileio`).
"""
from .utils import (register_atomic_local_backend,
                    register_local_checkpoint_loader,
                    register_remote_checkpoint_loaders)
from .version import __version__

register_local_checkpoint_loader()
register_remote_checkpoint_loaders()
register_atomic_local_backend()

from . import datasets, engine, models  # noqa: E402,F401

__all__ = ['__version__']
