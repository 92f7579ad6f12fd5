from .algorithms import DINO, BCSSLMoCoV3
from .backbones import (BCSSLConvNeXt, BCSSLConvNeXtBlock, StrictResNet,
                        StrictSwinTransformer, StrictVisionTransformer)
from .classifiers import LinearProbeClassifier
from .heads import BCSSLMoCoV3Head, DINOHead
from .losses import DINOLoss
from .necks import DINONeck, SimpleFeaturePyramid
from .timm_models import BCSSLConvNeXtTimm

__all__ = [
    'BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'BCSSLConvNeXtTimm', 'BCSSLMoCoV3',
    'BCSSLMoCoV3Head', 'DINO', 'DINOHead', 'DINOLoss', 'DINONeck',
    'LinearProbeClassifier', 'SimpleFeaturePyramid', 'StrictResNet',
    'StrictSwinTransformer', 'StrictVisionTransformer'
]
