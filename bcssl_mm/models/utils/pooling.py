"""The pooled feature vector of a backbone, shared by DINO's heads and the
evaluation tools (k-NN, cached features)."""
from typing import Sequence

import torch


def pool_backbone_output(outs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The (N, C) feature of a backbone's outputs, as the backbone pools it.

    The last output is used. Vectors are taken as they are: BC-SSL /
    ConvNeXt with ``gap_before_final_norm=True`` (global average pool, then
    the final norm), ViT with ``out_type='cls_token'`` (the CLS token after
    the final norm). Feature maps (ResNet, Swin) are globally
    average-pooled.

    Args:
        outs (Sequence[Tensor]): The backbone's outputs, the last one
            (N, C) or (N, C, H, W).

    Returns:
        Tensor: (N, C).
    """
    out = outs[-1]
    if out.dim() == 4:  # (N, C, H, W) -> (N, C)
        return out.mean(dim=(2, 3))
    if out.dim() != 2:
        raise ValueError(
            f'cannot pool a backbone output of shape {tuple(out.shape)}: '
            'expected (N, C) or (N, C, H, W) (a ViT needs '
            "out_type='cls_token')")
    return out
