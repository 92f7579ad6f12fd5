"""SelfPatch's class-attention aggregator and its neighbour selection.

Paper: "Patch-level Representation Learning for Self-supervised Vision
Transformers" (Yun et al., CVPR 2022, https://arxiv.org/abs/2206.07990),
§3.2; recipe and the official code's details in docs/recipes.md §9.

Two CaiT-style class-attention blocks (Touvron et al. 2021,
https://arxiv.org/abs/2103.17239) and a LayerNorm serve twice:

- **image token**: a learned token attends to all patch tokens of a view;
  it replaces the ViT's CLS token for the image-level DINO loss;
- **neighbour aggregate** (teacher): for each patch, the same learned token
  attends to the ``num_neighbours`` (4) most similar (cosine) of its 8
  neighbours in the 3 x 3 window around it; the student's patch ``i`` is
  then trained to match the aggregate of ``i``'s neighbours.

The grid comes from the feature map, so any input size and any backbone
stride work (official SelfPatch accepts only 196 and 36 tokens). At the
border a patch has fewer neighbours (5 on an edge, 3 in a corner; a corner
then aggregates 3, the fourth slot is masked out of the attention).
``wrap_around=True`` reproduces official SelfPatch, whose neighbour
indices are taken modulo the grid size, so that a border patch counts
patches of the opposite border as neighbours. It is off by default: those
patches are not adjacent in the image, and the method's premise is that
adjacent patches are likely to show the same object.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS


def neighbour_indices(height: int,
                      width: int,
                      kernel_size: int = 3,
                      wrap_around: bool = False,
                      device: Optional[torch.device] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The neighbours of each patch of a ``height x width`` grid.

    Patches are numbered row-major (``row * width + col``), the order of a
    ViT's patch tokens and of a flattened feature map. The neighbours of a
    patch are the other ``kernel_size ** 2 - 1`` patches of the
    ``kernel_size x kernel_size`` window centred on it, in row-major order
    of their offsets.

    Args:
        height (int): Grid rows.
        width (int): Grid columns.
        kernel_size (int): Odd window size. Defaults to 3 (8 neighbours).
        wrap_around (bool): Take offsets modulo the grid size (official
            SelfPatch) instead of dropping those outside the grid.
        device (torch.device, optional): Device of the outputs.

    Returns:
        tuple[Tensor, Tensor]: ``index`` (P, K) long, the neighbour of each
        slot, and ``valid`` (P, K) bool; invalid slots (outside the grid)
        hold the patch's own index. P = height * width, K = kernel_size ** 2
        - 1.
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(
            f'kernel_size must be odd and >= 3, got {kernel_size!r}')
    if height < 1 or width < 1:
        raise ValueError(f'empty grid {height} x {width}')
    radius = kernel_size // 2
    offsets = [(dy, dx) for dy in range(-radius, radius + 1)
               for dx in range(-radius, radius + 1) if (dy, dx) != (0, 0)]
    rows = torch.arange(height, device=device).view(-1, 1, 1)
    cols = torch.arange(width, device=device).view(1, -1, 1)
    dy = torch.tensor([o[0] for o in offsets], device=device)
    dx = torch.tensor([o[1] for o in offsets], device=device)
    nrows, ncols = rows + dy, cols + dx  # (H, 1, K), (1, W, K)
    if wrap_around:
        nrows, ncols = nrows % height, ncols % width
    valid = ((nrows >= 0) & (nrows < height) & (ncols >= 0) & (ncols < width))
    index = nrows * width + ncols
    own = (rows * width + cols).expand_as(index)
    index = torch.where(valid, index, own)
    return index.reshape(height * width, -1), valid.reshape(height * width, -1)


def select_neighbours(tokens: torch.Tensor, index: torch.Tensor,
                      valid: torch.Tensor,
                      k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` neighbours of each patch most similar to it (cosine).

    Args:
        tokens (Tensor): (B, P, C) patch tokens.
        index (Tensor): (P, K) neighbour indices (:func:`neighbour_indices`).
        valid (Tensor): (P, K) which slots are real neighbours.
        k (int): How many to keep, <= K.

    Returns:
        tuple[Tensor, Tensor]: (B, P, k) indices into P of the chosen
        neighbours, most similar first, and (B, P, k) bool, False where a
        patch has fewer than ``k`` valid neighbours (those slots hold the
        patch itself and must be masked).
    """
    if not 1 <= k <= index.shape[1]:
        raise ValueError(
            f'num_neighbours must be in [1, {index.shape[1]}], got {k!r}')
    unit = F.normalize(tokens, dim=-1)
    # (B, P, K): cosine similarity of each patch to each of its neighbours
    sim = torch.einsum('bpc,bpkc->bpk', unit, unit[:, index])
    sim = sim.masked_fill(~valid, float('-inf'))
    top = sim.topk(k, dim=-1).indices  # (B, P, k) slots
    batch = tokens.shape[0]
    chosen = index.expand(batch, -1, -1).gather(-1, top)
    chosen_valid = valid.expand(batch, -1, -1).gather(-1, top)
    return chosen, chosen_valid


class ClassAttentionBlock(nn.Module):
    """CaiT's class-attention block, as SelfPatch uses it (no layer scale,
    no stochastic depth): only the class token is updated,

    ``u = [cls, x]; cls += Attn(q=LN(cls), kv=LN(u)); cls += MLP(LN(cls))``.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / embed_dims. Defaults to 4.
        qkv_bias (bool): Biases of q, k, v. Defaults to True.
        norm_cfg (dict): Defaults to LayerNorm, eps 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='LN', eps=1e-6)) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.k = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dims, hidden), nn.GELU(),
            nn.Linear(hidden, embed_dims))

    def forward(self,
                x: torch.Tensor,
                cls_token: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Update ``cls_token`` (B, 1, C) from tokens ``x`` (B, N, C).

        ``key_mask`` (B, N) bool, optional: False for tokens of ``x`` to
        ignore (the class token itself is always attended to).
        """
        B, N, C = x.shape
        u = self.norm1(torch.cat([cls_token, x], dim=1))

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(B, -1, self.num_heads,
                             C // self.num_heads).transpose(1, 2)

        q = heads(self.q(u[:, :1])) * self.scale
        attn = q @ heads(self.k(u)).transpose(-2, -1)  # (B, heads, 1, 1+N)
        if key_mask is not None:
            keep = torch.cat([key_mask.new_ones(B, 1), key_mask], dim=1)
            attn = attn.masked_fill(~keep[:, None, None, :], float('-inf'))
        out = (attn.softmax(dim=-1) @ heads(self.v(u))).transpose(1, 2)
        cls_token = cls_token + self.proj(out.reshape(B, 1, C))
        return cls_token + self.mlp(self.norm2(cls_token))


@MODELS.register_module()
class SelfPatchAggregator(BaseModule):
    """SelfPatch's head on the backbone's patch tokens: a learned token, 2
    class-attention blocks and a LayerNorm (official ``SelfPatchHead``).

    Args:
        embed_dims (int): Width of the patch tokens.
        num_heads (int): Attention heads (official: the ViT's, 6 for ViT-S).
        num_blocks (int): Class-attention blocks. Defaults to 2.
        mlp_ratio (float): Defaults to 4.
        num_neighbours (int): Neighbours kept per patch (``k_num``).
            Defaults to 4.
        kernel_size (int): Window of candidate neighbours. Defaults to 3.
        wrap_around (bool): Official SelfPatch's neighbours across the
            border (see the module docstring). Defaults to False.
        norm_cfg (dict): Defaults to LayerNorm, eps 1e-6.
        init_cfg (dict): Defaults to official SelfPatch's: truncated normal
            (std 0.02, bias 0) on the linear layers; the learned token is
            truncated normal (std 0.02) as well.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        num_blocks: int = 2,
        mlp_ratio: float = 4.,
        num_neighbours: int = 4,
        kernel_size: int = 3,
        wrap_around: bool = False,
        norm_cfg: dict = dict(type='LN', eps=1e-6),
        init_cfg: Optional[dict] = dict(
            type='TruncNormal', layer='Linear', std=.02, bias=0.)
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 1 <= num_neighbours <= kernel_size**2 - 1:
            raise ValueError(
                f'num_neighbours must be in [1, {kernel_size**2 - 1}], got '
                f'{num_neighbours!r}')
        self.embed_dims = embed_dims
        self.num_neighbours = num_neighbours
        self.kernel_size = kernel_size
        self.wrap_around = wrap_around
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.blocks = nn.ModuleList([
            ClassAttentionBlock(embed_dims, num_heads, mlp_ratio, True,
                                norm_cfg) for _ in range(num_blocks)
        ])
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        if not pretrained:  # official: truncated normal, std 0.02
            trunc_normal_(self.cls_token, std=.02)

    def _attend(self,
                tokens: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The learned token after the blocks, over ``tokens`` (B, N, C);
        (B, 1, C), before the norm."""
        cls_token = self.cls_token.expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            cls_token = block(tokens, cls_token, key_mask)
        return cls_token

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image token (B, C): the learned token pooled over all patches
        (B, P, C), normed."""
        return self.norm(self._attend(tokens))[:, 0]

    def aggregate_neighbours(self, tokens: torch.Tensor, height: int,
                             width: int) -> torch.Tensor:
        """(B, P, C): for each patch, the learned token pooled over its
        ``num_neighbours`` most similar neighbours, normed."""
        B, P, C = tokens.shape
        index, valid = neighbour_indices(height, width, self.kernel_size,
                                         self.wrap_around, tokens.device)
        if not valid.any(dim=1).all():
            raise ValueError(f'a {height} x {width} grid leaves patches '
                             'without neighbours')
        chosen, chosen_valid = select_neighbours(tokens, index, valid,
                                                 self.num_neighbours)
        neighbours = tokens.gather(
            1,
            chosen.reshape(B, -1,
                           1).expand(-1, -1,
                                     C)).reshape(B * P, self.num_neighbours, C)
        key_mask = None if chosen_valid.all() else chosen_valid.reshape(
            B * P, -1)
        return self.norm(self._attend(neighbours, key_mask)).reshape(B, P, C)

    def attend_each(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, P, C): for each patch, the learned token pooled over that
        patch alone, normed (the student's side of ``aggregate_neighbours``
        when the image token does not train the blocks, see
        :class:`~bcssl_mm.models.algorithms.SelfPatch`)."""
        B, P, C = tokens.shape
        return self.norm(self._attend(tokens.reshape(B * P, 1,
                                                     C))).reshape(B, P, C)

    def forward(self,
                feat_map: torch.Tensor,
                patches: str = 'norm',
                pool: bool = True
                ) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """Image token and patch outputs of a feature map.

        Args:
            feat_map (Tensor): (B, C, H, W) patch tokens on their grid.
            patches (str): The patch outputs: 'neighbours' (the teacher's
                neighbour aggregates), 'norm' (the tokens themselves, normed:
                official SelfPatch's student) or 'class_attention' (each
                token pooled alone, :meth:`attend_each`).
            pool (bool): Also pool the image token. Defaults to True.

        Returns:
            tuple[Tensor | None, Tensor]: (B, C) image token (None unless
            ``pool``), (B, H * W, C) patch outputs, row-major.
        """
        _, _, height, width = feat_map.shape
        tokens = feat_map.flatten(2).transpose(1, 2)
        image = self.pool(tokens) if pool else None
        if patches == 'neighbours':
            return image, self.aggregate_neighbours(tokens, height, width)
        if patches == 'class_attention':
            return image, self.attend_each(tokens)
        if patches == 'norm':
            return image, self.norm(tokens)
        raise ValueError(f"patches must be 'neighbours', 'norm' or "
                         f"'class_attention', got {patches!r}")
