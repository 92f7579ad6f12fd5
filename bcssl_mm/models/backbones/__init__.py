from .bcssl_convnext import BCSSLConvNeXt, BCSSLConvNeXtBlock
from .strict_pretrained import (StrictPretrainedMixin, StrictResNet,
                                StrictSwinTransformer, StrictVisionTransformer)

__all__ = [
    'BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'StrictPretrainedMixin',
    'StrictResNet', 'StrictSwinTransformer', 'StrictVisionTransformer'
]
