"""Data pipelines. Datasets are mmpretrain's own (``ImageNet``,
``CustomDataset(with_label=False)`` for unlabelled image folders)."""
from .transforms import DINOMultiCrop, dino_view_pipeline

__all__ = ['DINOMultiCrop', 'dino_view_pipeline']
