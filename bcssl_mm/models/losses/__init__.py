from .dino_loss import DINOLoss, dino_pairs
from .patch_dino_loss import PatchDINOLoss

__all__ = ['DINOLoss', 'PatchDINOLoss', 'dino_pairs']
