from .backbones import BCSSLConvNeXt, BCSSLConvNeXtBlock

__all__ = ['BCSSLConvNeXt', 'BCSSLConvNeXtBlock']
