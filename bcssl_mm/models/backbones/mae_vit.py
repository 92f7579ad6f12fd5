"""mmpretrain's MAE encoder with a shareable mask and attention maps on
request, for D-MAE-Lite distillation.

MAE-Lite (Wang et al., ICML 2023, https://arxiv.org/abs/2205.10063;
official wangsr126/mae-lite, ``projects/mae_lite``); docs/recipes.md §10 and
docs/maelite.md.
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.models import MAEViT
from mmpretrain.registry import MODELS


class MaskedEncoding(NamedTuple):
    """What :meth:`AttnMAEViT.forward_masked` returns.

    Attributes:
        latent (Tensor): (B, 1 + L_keep, C) features of the class token and
            the visible patches, after the final norm.
        mask (Tensor): (B, L) 0 for visible, 1 for masked patches.
        ids_restore (Tensor): (B, L) the inverse permutation, for the
            decoder.
        ids_shuffle (Tensor): (B, L) the permutation; its first ``L_keep``
            entries are the visible patches, in the order they are fed.
        attn_logits (dict): Block index -> (B, heads, 1 + L_keep,
            1 + L_keep) pre-softmax attention ``Q K^T / sqrt(d_head)`` of
            that block, for the blocks asked for.
    """
    latent: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    ids_shuffle: torch.Tensor
    attn_logits: Dict[int, torch.Tensor]


def layer_forward_with_attention(layer: nn.Module, x: torch.Tensor
                                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One mmpretrain ``TransformerEncoderLayer`` forward that also returns
    its pre-softmax attention ``Q K^T / sqrt(d_head)``.

    The same operations as the layer's own forward (``x + attn(ln1(x))``,
    then the FFN with its residual; projection dropout, layer scale and drop
    path as the layer has them), with the attention written out instead of
    the fused ``scaled_dot_product_attention``, which does not expose it.

    Returns:
        tuple[Tensor, Tensor]: the layer's output (B, N, C) and the logits
        (B, heads, N, N).
    """
    attn = layer.attn
    h = layer.ln1(x)
    B, N, _ = h.shape
    qkv = attn.qkv(h).reshape(B, N, 3, attn.num_heads,
                              attn.head_dims).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = (q @ k.transpose(-2, -1)) * attn.head_dims**-0.5
    probs = logits.softmax(dim=-1)
    if attn.training and attn.attn_drop > 0:
        probs = nn.functional.dropout(probs, attn.attn_drop)
    out = (probs @ v).transpose(1, 2).reshape(B, N, attn.embed_dims)
    out = attn.out_drop(attn.gamma1(attn.proj_drop(attn.proj(out))))
    if attn.v_shortcut:
        out = v.squeeze(1) + out
    x = x + out
    return layer.ffn(layer.ln2(x), identity=x), logits


@MODELS.register_module()
class AttnMAEViT(MAEViT):
    """mmpretrain's ``MAEViT`` whose random mask can be shared with another
    encoder and which returns the attention of chosen blocks.

    ``forward(x, mask=True)`` is ``MAEViT``'s (so the class serves mmpretrain's
    ``MAE`` unchanged); :meth:`forward_masked` takes the permutation of an
    earlier call (``ids_shuffle``), so that a teacher and a student see the
    same visible patches in the same order, and returns the pre-softmax
    attention of the blocks in ``attn_layers``. Only those blocks run the
    written-out attention; every other block keeps the fused kernel.

    Args:
        arch (str | dict): mmpretrain ViT arch. MAE-Lite's Tiny is
            ``dict(embed_dims=192, num_layers=12, num_heads=12,
            feedforward_channels=768)`` (mmpretrain's 'deit-tiny' has 3
            heads).
        **kwargs: ``MAEViT``'s other arguments.
    """

    def random_masking(
        self,
        x: torch.Tensor,
        mask_ratio: float = 0.75,
        ids_shuffle: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``MAEViT.random_masking`` that can reuse a permutation.

        Args:
            x (Tensor): (B, L, C) patch tokens.
            mask_ratio (float): Share of masked patches.
            ids_shuffle (Tensor, optional): (B, L) permutation of an earlier
                call; a new one (argsort of uniform noise) by default.

        Returns:
            tuple: visible tokens (B, L_keep, C), mask (B, L), ids_restore
            and ids_shuffle (B, L).
        """
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        if ids_shuffle is None:
            noise = torch.rand(N, L, device=x.device)
            ids_shuffle = torch.argsort(noise, dim=1)
        elif ids_shuffle.shape != (N, L):
            raise ValueError(
                f'ids_shuffle of shape {tuple(ids_shuffle.shape)} does not '
                f'fit {N} images of {L} patches')
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(
            x, dim=1, index=ids_keep.unsqueeze(-1).expand(-1, -1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore, ids_shuffle

    def forward_masked(
        self,
        x: torch.Tensor,
        ids_shuffle: Optional[torch.Tensor] = None,
        attn_layers: Sequence[int] = ()
    ) -> MaskedEncoding:
        """Encode the visible patches; see :class:`MaskedEncoding`.

        Args:
            x (Tensor): (B, 3, H, W) images.
            ids_shuffle (Tensor, optional): The permutation to reuse.
            attn_layers (Sequence[int]): Blocks whose attention logits to
                return; negative values count from the last.
        """
        num_layers = len(self.layers)
        wanted = set()
        for i in attn_layers:
            if not -num_layers <= i < num_layers:
                raise ValueError(f'attn_layers entry {i} is out of range for '
                                 f'{num_layers} blocks')
            wanted.add(i % num_layers)
        B = x.shape[0]
        x = self.patch_embed(x)[0]
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore, ids_shuffle = self.random_masking(
            x, self.mask_ratio, ids_shuffle)
        cls_token = (self.cls_token +
                     self.pos_embed[:, :1, :]).expand(B, -1, -1)
        x = torch.cat((cls_token, x), dim=1)
        logits = {}
        for i, layer in enumerate(self.layers):
            if i in wanted:
                x, logits[i] = layer_forward_with_attention(layer, x)
            else:
                x = layer(x)
        return MaskedEncoding(
            self.norm1(x), mask, ids_restore, ids_shuffle, logits)

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True):
        """``MAEViT.forward`` in training: (latent, mask, ids_restore) of a
        new random mask, or with ``mask=None`` / ``False`` the features of
        the whole image (``VisionTransformer.forward``, by ``out_type``).

        In eval mode the whole image is encoded whatever ``mask`` says: the
        evaluation tools (k-NN, extraction checks, the linear probe) call
        ``backbone(images)``, and masking is a training-time operation
        (:meth:`forward_masked` masks in any mode).
        """
        if mask is None or mask is False or not self.training:
            return super(MAEViT, self).forward(x)
        out = self.forward_masked(x)
        return out.latent, out.mask, out.ids_restore
