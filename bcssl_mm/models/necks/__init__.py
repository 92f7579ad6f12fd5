from .dino_neck import DINONeck, WeightNormLinear
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['DINONeck', 'SimpleFeaturePyramid', 'WeightNormLinear']
