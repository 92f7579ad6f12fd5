from .bcssl_convnext import BCSSLConvNeXt, BCSSLConvNeXtBlock
from .mae_vit import AttnMAEViT, MaskedEncoding, layer_forward_with_attention
from .strict_pretrained import (StrictPretrainedMixin, StrictResNet,
                                StrictSwinTransformer, StrictVisionTransformer)

__all__ = [
    'AttnMAEViT', 'BCSSLConvNeXt', 'BCSSLConvNeXtBlock', 'MaskedEncoding',
    'StrictPretrainedMixin', 'StrictResNet', 'StrictSwinTransformer',
    'StrictVisionTransformer', 'layer_forward_with_attention'
]
