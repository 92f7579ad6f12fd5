from .algorithms import DINO
from .backbones import (BCSSLConvNeXt, BCSSLConvNeXtBlock, StrictResNet,
                        StrictSwinTransformer, StrictVisionTransformer)
from .classifiers import LinearProbeClassifier
from .heads import DINOHead
from .losses import DINOLoss
from .necks import DINONeck, SimpleFeaturePyramid
from .timm_models import BCSSLConvNeXtTimm

__all__ = [
    'BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'BCSSLConvNeXtTimm', 'DINO',
    'DINOHead', 'DINOLoss', 'DINONeck', 'LinearProbeClassifier',
    'SimpleFeaturePyramid', 'StrictResNet', 'StrictSwinTransformer',
    'StrictVisionTransformer'
]
