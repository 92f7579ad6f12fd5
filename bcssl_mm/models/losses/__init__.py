from .dino_loss import DINOLoss, dino_pairs

__all__ = ['DINOLoss', 'dino_pairs']
