from .dino import DINO, embed_views

__all__ = ['DINO', 'embed_views']
