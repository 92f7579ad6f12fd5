"""ViTDet's simple feature pyramid: multi-scale maps from one ViT map.

Paper: "Exploring Plain Vision Transformer Backbones for Object Detection"
(Li et al. 2022, https://arxiv.org/abs/2203.16527), §3 "Simple feature
pyramid" and Fig. 2 (c): from the last stride-16 map of a plain ViT, the
strides 32, 16, 8 and 4 come from a stride-2 max pooling, the identity, one
and two stride-2 2x2 deconvolutions (GELU between the two), each followed by
a 1x1 conv and a 3x3 conv, with a LayerNorm after each conv and after the
first of two deconvolutions; an extra stride-64 level for the RPN is a
stride-2 subsampling of the stride-32 output (FPN's "P6").
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid on the last map of a plain backbone.

    Paper: https://arxiv.org/abs/2203.16527 (§3). Takes the backbone's
    outputs (a tuple whose last item is a (N, C, H, W) map, e.g. mmpretrain
    ``VisionTransformer`` with ``out_type='featmap'``) and returns
    ``num_outs`` maps of ``out_channels`` channels, one per scale factor
    (4: two deconvolutions, 2: one, 1: identity, 0.5: max pooling), then
    ``num_outs - len(scale_factors)`` extra levels, each a stride-2
    subsampling of the previous one (``F.max_pool2d(x, 1, stride=2)``, as
    mmdet's ``FPN`` and detectron2's ``LastLevelMaxPool``).

    Args:
        in_channels (int): Channels of the backbone map (the ViT width).
        out_channels (int): Channels of every output. Defaults to 256.
        scale_factors (Sequence[float]): Output scale relative to the input
            map, from the finest; each one of 4, 2, 1 or 0.5. Defaults to
            (4, 2, 1, 0.5): strides 4, 8, 16, 32 of a stride-16 ViT.
        num_outs (int): Number of outputs, at least
            ``len(scale_factors)``. Defaults to 5 (adds stride 64).
        norm_cfg (dict): Norm after each conv and between the two
            deconvolutions; ViTDet uses a channel-wise LayerNorm. Defaults
            to ``dict(type='mmpretrain.LN2d', eps=1e-6)``.
        act_cfg (dict): Activation between the two deconvolutions.
            Defaults to ``dict(type='GELU')``.
        init_cfg (dict | list[dict], optional): Initialisation. Defaults to
            Xavier-uniform convs (mmdet ``FPN``'s).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4., 2., 1., .5),
        num_outs: int = 5,
        norm_cfg: dict = dict(type='mmpretrain.LN2d', eps=1e-6),
        act_cfg: dict = dict(type='GELU'),
        init_cfg: dict = dict(
            type='Xavier', layer='Conv2d', distribution='uniform')
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_outs < len(scale_factors):
            raise ValueError(
                f'SimpleFeaturePyramid: num_outs ({num_outs}) must be at '
                f'least len(scale_factors) ({len(scale_factors)})')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs

        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            layers, channels = self._rescale(scale, in_channels, norm_cfg,
                                             act_cfg)
            layers += [
                ConvModule(
                    channels, out_channels, 1, norm_cfg=norm_cfg,
                    act_cfg=None),
                ConvModule(
                    out_channels,
                    out_channels,
                    3,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=None),
            ]
            self.stages.append(nn.Sequential(*layers))

    @staticmethod
    def _rescale(scale: float, channels: int, norm_cfg: dict,
                 act_cfg: dict) -> Tuple[List[nn.Module], int]:
        """The layers that bring a (N, C, H, W) map to ``scale`` x H, and the
        channels they output."""
        if scale == 4.:
            # (N, C, H, W) -> (N, C/2, 2H, 2W) -> (N, C/4, 4H, 4W)
            return [
                nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
                build_norm_layer(norm_cfg, channels // 2)[1],
                build_activation_layer(act_cfg),
                nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2),
            ], channels // 4
        if scale == 2.:
            # (N, C, H, W) -> (N, C/2, 2H, 2W)
            return [nn.ConvTranspose2d(channels, channels // 2, 2,
                                       stride=2)], channels // 2
        if scale == 1.:
            return [], channels
        if scale == .5:
            # (N, C, H, W) -> (N, C, H/2, W/2)
            return [nn.MaxPool2d(kernel_size=2, stride=2)], channels
        raise ValueError('SimpleFeaturePyramid: each scale factor must be '
                         f'4, 2, 1 or 0.5, got {scale}')

    def forward(self,
                inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Build the pyramid from ``inputs[-1]``.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the last, (N, C, H,
                W), is used.

        Returns:
            tuple[Tensor]: ``num_outs`` maps (N, out_channels, s H, s W),
            from the finest.
        """
        x = inputs[-1]  # (N, C, H, W), stride 16 for a ViT-*/16
        outs = [stage(x) for stage in self.stages]
        for _ in range(self.num_outs - len(outs)):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
