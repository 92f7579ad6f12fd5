from .dino_head import DINOHead, PatchDINOHead
from .mocov3_head import BCSSLMoCoV3Head

__all__ = ['BCSSLMoCoV3Head', 'DINOHead', 'PatchDINOHead']
