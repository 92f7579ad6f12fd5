from .multicrop import DINOMultiCrop, dino_view_pipeline

__all__ = ['DINOMultiCrop', 'dino_view_pipeline']
