"""Data pipelines. Datasets are mmpretrain's own (``ImageNet``,
``CustomDataset(with_label=False)`` for unlabelled image folders)."""
from .coco_check import (AnnotationError, check_coco_file,
                         check_config_annotations)
from .transforms import DINOMultiCrop, dino_view_pipeline

__all__ = [
    'AnnotationError', 'DINOMultiCrop', 'check_coco_file',
    'check_config_annotations', 'dino_view_pipeline'
]
