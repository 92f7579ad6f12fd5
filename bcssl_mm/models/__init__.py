from .backbones import BCSSLConvNeXt, BCSSLConvNeXtBlock
from .timm_models import BCSSLConvNeXtTimm

__all__ = ['BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'BCSSLConvNeXtTimm']
