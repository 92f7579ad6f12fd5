from .bcssl_convnext import BCSSLConvNeXt, BCSSLConvNeXtBlock

__all__ = ['BCSSLConvNeXt', 'BCSSLConvNeXtBlock']
