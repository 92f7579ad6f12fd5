from .dino_neck import DINONeck, WeightNormLinear
from .selfpatch_aggregator import (ClassAttentionBlock, SelfPatchAggregator,
                                   neighbour_indices, select_neighbours)
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = [
    'ClassAttentionBlock', 'DINONeck', 'SelfPatchAggregator',
    'SimpleFeaturePyramid', 'WeightNormLinear', 'neighbour_indices',
    'select_neighbours'
]
