"""bcssl_mm: self-supervised large-kernel CNNs (BC-SSL) on OpenMMLab.

Importing the package registers its models and hooks in the mmengine, mmdet and
mmpretrain registries; configs do it with
``custom_imports = dict(imports=['bcssl_mm'], allow_failed_imports=False)``.
"""
from .utils import register_local_checkpoint_loader
from .version import __version__

register_local_checkpoint_loader()

from . import datasets, engine, models  # noqa: E402,F401

__all__ = ['__version__']
