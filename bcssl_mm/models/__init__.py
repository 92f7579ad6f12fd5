from .algorithms import DINO, BCSSLMoCoV3
from .backbones import BCSSLConvNeXt, BCSSLConvNeXtBlock
from .classifiers import LinearProbeClassifier
from .heads import BCSSLMoCoV3Head, DINOHead
from .losses import DINOLoss
from .necks import DINONeck
from .timm_models import BCSSLConvNeXtTimm

__all__ = [
    'BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'BCSSLConvNeXtTimm', 'BCSSLMoCoV3',
    'BCSSLMoCoV3Head', 'DINO', 'DINOHead', 'DINOLoss', 'DINONeck',
    'LinearProbeClassifier'
]
