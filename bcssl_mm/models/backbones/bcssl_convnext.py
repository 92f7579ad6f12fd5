"""BC-SSL: ConvNeXt with a BatchNorm after each depthwise conv and large
kernels.

Paper: "The Counterattack of CNNs in Self-Supervised Learning: Larger Kernel
Size might be All You Need" (https://arxiv.org/abs/2312.05695), Fig. 1 and §3.

The block is mmpretrain's ConvNeXt block with two changes: the depthwise conv
has no bias and is followed by a BatchNorm, and its kernel is 9x9 by default.
Every other name, shape and default is mmpretrain's, so that

- a state dict of ``mmpretrain.ConvNeXt`` loads strictly into
  ``BCSSLConvNeXt(kernel_size=7, dw_norm_cfg=None)`` and gives the same
  outputs;
- mmdet's ``LearningRateDecayOptimizerConstructor`` (which keys on the class
  name containing "ConvNeXt" and on ``downsample_layers.*`` / ``stages.*``) and
  mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` (through
  ``get_layer_depth``) assign ConvNeXt's layer ids.

``switch_to_deploy()`` gives an inference-only form with the same outputs (to
float rounding): BN and layer scale folded into the adjacent linear maps, the
trunk kept in channels-last memory so that the block's permutes are free views,
and on CPU the MLP run over row tiles with GELU and the residual add fused into
the oneDNN matmuls.

The model traces with ``torch.fx`` and its blocks and stages (training form)
compile with ``torch.jit.script``, which the timm models use: the LN2d norms
are built as :class:`ScriptableLayerNorm2d`, which computes what mmpretrain's
``LayerNorm2d`` computes and has its parameters. ``BCSSLConvNeXt.forward``
itself (mmpretrain's) is not compiled by TorchScript.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmdet.registry import MODELS as MMDET_MODELS
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.convnext import ConvNeXt, ConvNeXtBlock
from mmpretrain.models.utils import LayerNorm2d, build_norm_layer
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.state_dict_remap import (ConversionError, Rule, first_keys,
                                       num_indexed, save_checkpoint)
from ..utils import CheckpointMismatchError, load_backbone_checkpoint
from .strict_pretrained import StrictPretrainedMixin

_HAS_MKLDNN_LINEAR = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


class ScriptableLayerNorm2d(LayerNorm2d, nn.LayerNorm):
    """mmpretrain's ``LayerNorm2d`` with a typed forward and no assert.

    The same ops in the same order, hence the same outputs and parameters;
    the upstream forward has an untyped ``data_format`` and an assert on the
    input's rank, which ``torch.jit.script`` cannot compile and ``torch.fx``
    cannot trace. ``nn.LayerNorm`` is named as a direct base so that
    mmengine's initialisers, which match ``layer`` names against a module's
    class and its direct bases, treat it as a ``LayerNorm``.

    Args:
        num_channels (int): Number of channels.
        **kwargs: ``nn.LayerNorm``'s (``eps``, ``elementwise_affine``, ...).
    """

    def forward(self,
                x: torch.Tensor,
                data_format: str = 'channel_first') -> torch.Tensor:
        if data_format == 'channel_last':  # (N, H, W, C)
            return F.layer_norm(x, self.normalized_shape, self.weight,
                                self.bias, self.eps)
        x = F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
            self.bias, self.eps)  # (N, H, W, C)
        return x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def _convert_layer_norm2d(norm: nn.Module, cls: type) -> nn.Module:
    """Return ``norm`` as a ``cls`` (a LayerNorm2d subclass) with its
    parameters, device and ``requires_grad``; other norms unchanged."""
    if not isinstance(norm, LayerNorm2d) or type(norm) is cls:
        return norm
    new = cls(
        norm.num_channels,
        eps=norm.eps,
        elementwise_affine=norm.elementwise_affine,
        bias=norm.bias is not None)
    new.load_state_dict(norm.state_dict())
    ref = next(norm.parameters(), None)
    if ref is not None:
        new.to(ref)
        new.requires_grad_(ref.requires_grad)
    return new


def build_norm(cfg: dict, num_channels: int) -> nn.Module:
    """mmpretrain's ``build_norm_layer``, with LN2d built as
    :class:`ScriptableLayerNorm2d`."""
    return _convert_layer_norm2d(
        build_norm_layer(cfg, num_channels), ScriptableLayerNorm2d)


class ConvNeXtArgumentError(ValueError, AssertionError):
    """A bad argument of :class:`BCSSLConvNeXt`, named in the message.

    A ``ValueError``, and also an ``AssertionError`` because mmpretrain's
    ``ConvNeXt`` checks the same arguments (``arch``, ``out_indices``) with
    ``assert``: code and tests written against it, e.g. mmpretrain v1.2.0's
    ``test_convnext.py::test_assertion``, catch this error unchanged.
    """


def check_kernel_size(kernel_size: int) -> int:
    """Return ``kernel_size`` if it is an odd integer >= 3, else raise."""
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int)
            or kernel_size < 3 or kernel_size % 2 == 0):
        raise ConvNeXtArgumentError(
            'BCSSLConvNeXt: kernel_size must be an odd integer '
            f'>= 3 (3, 5, 7, 9, ...), got {kernel_size!r}')
    return kernel_size


class ChannelsLastLayerNorm2d(ScriptableLayerNorm2d):
    """mmpretrain's ``LayerNorm2d`` with a channels-last output.

    The upstream norm copies its output back to NCHW-contiguous; this one
    returns the permuted view, so that the deploy trunk stays channels-last.

    Args:
        num_channels (int): Number of channels.
        **kwargs: ``nn.LayerNorm``'s (``eps``, ``elementwise_affine``, ...).
    """

    def forward(self,
                x: torch.Tensor,
                data_format: str = 'channel_first') -> torch.Tensor:
        channel_first = data_format == 'channel_first'
        if channel_first:
            x = x.permute(0, 2, 3, 1)  # (N, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        if channel_first:
            x = x.permute(0, 3, 1, 2)  # (N, C, H, W), channels-last
        return x


class BCSSLConvNeXtBlock(ConvNeXtBlock):
    """ConvNeXt block with a (bias-free) depthwise conv followed by BatchNorm.

    ``DWConv kxk -> BN -> LayerNorm -> Linear C->4C -> GELU -> Linear 4C->C ->
    layer scale -> DropPath -> + x`` (paper Fig. 1, right). After
    :meth:`switch_to_deploy` (inference only) BN and layer scale are folded
    away and the block runs on channels-last tensors.

    Args:
        in_channels (int): Number of input and output channels.
        kernel_size (int): Kernel of the depthwise conv, odd. Defaults to 9.
        dw_norm_cfg (dict, optional): Norm after the depthwise conv. ``None``
            gives plain ConvNeXt (the depthwise conv then has a bias).
            Defaults to ``dict(type='BN')``.
        norm_cfg (dict): Norm before the MLP. Defaults to LN2d, eps 1e-6.
        act_cfg (dict): MLP activation. Defaults to GELU.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; <= 0 disables
            it. Defaults to 1e-6.
        with_cp (bool): Gradient checkpointing. Defaults to False.
        linear_pw_conv (bool): Pointwise layers as ``nn.Linear`` on
            channels-last tensors (True) or as 1x1 convs (False), as in
            mmpretrain. Defaults to True.
        use_grn (bool): Global response norm after the activation (ConvNeXt
            V2, https://arxiv.org/abs/2301.00808), as in mmpretrain; it is
            mmpretrain's ``GRN``, which TorchScript cannot compile.
            Defaults to False.
    """
    # mmengine's BaseModule.is_init has an untyped setter
    __jit_unused_properties__ = ['is_init']
    # deploy form on CPU: largest hidden (rows, 4C) tile of the MLP in bytes
    # (0: no tiling), and GELU / residual add fused into oneDNN's matmuls
    DEPLOY_TILE_BYTES = 2**24
    USE_MKLDNN_MLP = True

    def __init__(self,
                 in_channels: int,
                 kernel_size: int = 9,
                 dw_norm_cfg: Optional[dict] = dict(type='BN'),
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 act_cfg: dict = dict(type='GELU'),
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 linear_pw_conv: bool = True,
                 use_grn: bool = False) -> None:
        check_kernel_size(kernel_size)
        super().__init__(
            in_channels,
            dw_conv_cfg=dict(
                kernel_size=kernel_size,
                padding=kernel_size // 2,
                bias=dw_norm_cfg is None),
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            mlp_ratio=mlp_ratio,
            linear_pw_conv=linear_pw_conv,
            drop_path_rate=drop_path_rate,
            layer_scale_init_value=layer_scale_init_value,
            use_grn=use_grn,
            with_cp=with_cp)
        self.norm = build_norm(norm_cfg, in_channels)
        self.dw_norm = (
            build_norm(dw_norm_cfg, in_channels)
            if dw_norm_cfg is not None else nn.Identity())

        self.deploy = False

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dw_norm(self.depthwise_conv(x))  # (N, C, H, W)
        if self.linear_pw_conv:
            x = x.permute(0, 2, 3, 1)  # (N, H, W, C)
            x = self.norm(x, data_format='channel_last')
            x = self.act(self.pointwise_conv1(x))
            if self.grn is not None:
                x = self.grn(x, data_format='channel_last')
            x = self.pointwise_conv2(x)
            if self.gamma is not None:
                x = x * self.gamma
            x = x.permute(0, 3, 1, 2)  # (N, C, H, W)
        else:  # 1x1 convs on (N, C, H, W)
            x = self.norm(x, data_format='channel_first')
            x = self.act(self.pointwise_conv1(x))
            if self.grn is not None:
                x = self.grn(x, data_format='channel_first')
            x = self.pointwise_conv2(x)
            if self.gamma is not None:
                x = x * self.gamma.view(1, -1, 1, 1)
        return shortcut + self.drop_path(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self._deploy_forward(x)
        # NOTE: with_cp is tested first: fx cannot branch on the traced
        # x.requires_grad, and TorchScript compiles no checkpointing
        if self.with_cp and x.requires_grad:
            return self._checkpointed_forward(x)
        return self._inner_forward(x)

    @torch.jit.unused
    def _checkpointed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return cp.checkpoint(self._inner_forward, x, use_reentrant=False)

    @torch.jit.unused
    def _deploy_forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last (N, C, H, W) is (N, H, W, C) in memory: the permutes
        # below are views and LayerNorm and the MLP see contiguous rows
        shortcut = x.contiguous(memory_format=torch.channels_last)
        x = self.depthwise_conv(shortcut).permute(0, 2, 3, 1)  # (N, H, W, C)
        x = self.norm(x, data_format='channel_last')
        n, h, w, c = x.shape
        x = x.reshape(-1, c)  # (N*H*W, C)
        shortcut_rows = shortcut.permute(0, 2, 3, 1).reshape(-1, c)
        tiles = self._num_tiles(x)
        if self.grn is not None:
            # GRN normalises over each whole map: no row tiles, no fusion
            x = self.act(self.pointwise_conv1(x)).view(n, h, w, -1)
            x = self.grn(x, data_format='channel_last')  # (N, H, W, 4C)
            out = shortcut_rows + self.pointwise_conv2(x.flatten(0, 2))
        elif tiles == 1:
            out = self._deploy_mlp(x, shortcut_rows)
        else:
            # NOTE: a (N*H*W, 4C) hidden over glibc's 32 MiB mmap ceiling is
            # a fresh mapping, page-faulted on every call (28k faults per
            # batch-8 forward of BC-SSL-T); smaller tiles reuse heap memory
            out = torch.cat([
                self._deploy_mlp(a, b)
                for a, b in zip(x.chunk(tiles), shortcut_rows.chunk(tiles))
            ])
        return out.view(n, h, w, c).permute(0, 3, 1, 2)  # (N, C, H, W)

    def _num_tiles(self, x: torch.Tensor) -> int:
        """Row tiles of the MLP: one off CPU, else hidden tiles of at most
        ``DEPLOY_TILE_BYTES``."""
        if x.device.type != 'cpu' or not self.DEPLOY_TILE_BYTES:
            return 1
        hidden = x.shape[0] * self.pointwise_conv1.out_features * \
            x.element_size()
        return -(-hidden // self.DEPLOY_TILE_BYTES)  # ceil

    def _deploy_mlp(self, x: torch.Tensor,
                    shortcut: torch.Tensor) -> torch.Tensor:
        """``shortcut + pw2(act(pw1(x)))`` on (M, C) rows."""
        pw1, pw2 = self.pointwise_conv1, self.pointwise_conv2
        if self._use_mkldnn_mlp(x):
            x = torch.ops.mkldnn._linear_pointwise(x, pw1.weight, pw1.bias,
                                                   'gelu', [],
                                                   self.act.approximate)
            return torch.ops.mkldnn._linear_pointwise.binary(
                x, shortcut, pw2.weight, pw2.bias, 'add')
        return shortcut + pw2(self.act(pw1(x)))

    def _use_mkldnn_mlp(self, x: torch.Tensor) -> bool:
        # NOTE: mkldnn._linear_pointwise is the fused op TorchInductor emits on
        # CPU; it has no autograd and ignores autocast, hence the guards
        return (self.USE_MKLDNN_MLP and _HAS_MKLDNN_LINEAR
                and x.device.type == 'cpu' and x.dtype == torch.float32
                and type(self.act) is nn.GELU
                and not torch.is_autocast_enabled('cpu')
                and not (torch.is_grad_enabled() and
                         (x.requires_grad
                          or self.pointwise_conv1.weight.requires_grad)))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold the depthwise BN into the conv and the layer scale into
        ``pointwise_conv2``; run the block in channels-last (inference only).
        """
        bn = self.dw_norm
        if isinstance(bn, _BatchNorm):
            conv = self.depthwise_conv
            std = (bn.running_var + bn.eps).sqrt()
            scale = bn.weight / std if bn.affine else 1. / std  # (C, )
            bias = bn.bias if bn.affine else torch.zeros_like(std)
            conv_bias = (
                conv.bias if conv.bias is not None else torch.zeros_like(std))
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                kernel_size=conv.kernel_size,
                padding=conv.padding,
                groups=conv.groups,
                bias=True).to(conv.weight)
            fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            fused.bias.copy_(bias + (conv_bias - bn.running_mean) * scale)
            self.depthwise_conv = fused
            self.dw_norm = nn.Identity()
        if not self.linear_pw_conv:
            # a 1x1 conv on (N, C, H, W) is a linear map on (N, H, W, C)
            for name in ('pointwise_conv1', 'pointwise_conv2'):
                conv = getattr(self, name)
                linear = nn.Linear(conv.in_channels,
                                   conv.out_channels).to(conv.weight)
                linear.weight.copy_(conv.weight.flatten(1))
                linear.bias.copy_(conv.bias)
                setattr(self, name, linear)
            self.linear_pw_conv = True
        if self.gamma is not None:
            # gamma * (W x + b) = (gamma[:, None] * W) x + gamma * b
            self.pointwise_conv2.weight.mul_(self.gamma[:, None])
            self.pointwise_conv2.bias.mul_(self.gamma)
            self.gamma = None
        self.deploy = True


@MMPRETRAIN_MODELS.register_module()
@MMDET_MODELS.register_module()
class BCSSLConvNeXt(StrictPretrainedMixin, ConvNeXt):
    """BC-SSL backbone: ConvNeXt with BN after large depthwise kernels.

    Registered in both mmpretrain's and mmdet's ``MODELS``. Paper:
    https://arxiv.org/abs/2312.05695.

    A drop-in for mmpretrain's ``ConvNeXt``: it takes every argument of it,
    in the same positional order and with the same meaning; the BC-SSL
    arguments (``kernel_size``, ``dw_norm_cfg``, ``norm_eval``) are keyword
    only. What differs from ``ConvNeXt``, and why:

    - defaults: 9x9 depthwise kernels and a BN after each (the paper's
      block); ``kernel_size=7, dw_norm_cfg=None`` gives ConvNeXt itself;
    - the default ``init_cfg`` also sets the BNs to unit weight, zero bias;
    - bad arguments raise ``ValueError`` naming the argument (``ConvNeXt``
      asserts); ``frozen_stages`` must lie in ``[0, num_stages]``;
    - negative ``out_indices`` count back from the last of any number of
      stages (``ConvNeXt`` adds 4 whatever the arch's number of stages);
    - the LN2d norms are :class:`ScriptableLayerNorm2d` (same numerics,
      same parameters), so that the model can be scripted and fx-traced.

    Args:
        arch (str | dict): One of ``arch_settings`` ('atto', ..., 'tiny',
            'small', 'base', ...) or a dict with ``depths`` and ``channels``.
            Defaults to 'tiny'.
        in_channels (int): Input image channels. Defaults to 3.
        stem_patch_size (int): Patch size of the stem. Defaults to 4.
        norm_cfg (dict): Stem, downsampling, block and output norms.
            Defaults to ``dict(type='LN2d', eps=1e-6)``.
        act_cfg (dict): MLP activation. Defaults to GELU.
        linear_pw_conv (bool): Pointwise layers as ``nn.Linear`` (True) or as
            1x1 convs (False); the same function either way. Defaults to True.
        use_grn (bool): Global response norm in the blocks (ConvNeXt V2;
            use it with ``layer_scale_init_value=0``). Defaults to False.
        drop_path_rate (float): Maximum stochastic depth rate, linearly
            increasing over blocks. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; <= 0 disables
            it. Defaults to 1e-6.
        out_indices (int | Sequence[int]): Stages whose (normed) output is
            returned; negative values count from the end. Defaults to -1.
        frozen_stages (int): Number of leading stages (with their downsampling
            layers) to freeze: no gradients, norms in eval mode. Defaults to 0.
        gap_before_final_norm (bool): Globally average pool before the output
            norm (classification). Defaults to True.
        with_cp (bool): Gradient checkpointing in the blocks. Defaults to
            False.
        init_cfg (dict | list[dict], optional): Initialisation. With
            ``dict(type='Pretrained', checkpoint=..., prefix=...)`` the
            checkpoint is loaded strictly (see
            :class:`~.strict_pretrained.StrictPretrainedMixin`).
        kernel_size (int): Depthwise kernel, any odd value >= 3. Keyword only.
            Defaults to 9.
        dw_norm_cfg (dict, optional): Norm after each depthwise conv: BN by
            default, ``dict(type='SyncBN')`` for multi-GPU runs, ``None`` for
            plain ConvNeXt. Keyword only.
        norm_eval (bool): Keep every BatchNorm in eval mode during training.
            Keyword only. Defaults to False.
        map_indices (Sequence[int]): Entries of ``out_indices`` whose output
            stays a normed feature map (N, C_i, H_i, W_i) even with
            ``gap_before_final_norm``: SelfPatch takes its patch tokens from
            the stage-3 map and its image feature from the pooled last
            stage, in one forward. Negative values count from the end.
            Keyword only. Defaults to ().
    """
    # NOTE: ConvNeXt.__init__ hard-codes its block class, so the trunk is built
    # here; forward, stage freezing and get_layer_depth are ConvNeXt's.
    __jit_unused_properties__ = ['is_init']

    def __init__(self,
                 arch: Union[str, Dict[str, Sequence[int]]] = 'tiny',
                 in_channels: int = 3,
                 stem_patch_size: int = 4,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 act_cfg: dict = dict(type='GELU'),
                 linear_pw_conv: bool = True,
                 use_grn: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = 0,
                 gap_before_final_norm: bool = True,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(
                         type='TruncNormal',
                         layer=['Conv2d', 'Linear'],
                         std=.02,
                         bias=0.),
                     dict(
                         type='Constant',
                         layer=['LayerNorm', '_BatchNorm'],
                         val=1.,
                         bias=0.),
                 ],
                 *,
                 kernel_size: int = 9,
                 dw_norm_cfg: Optional[dict] = dict(type='BN'),
                 norm_eval: bool = False,
                 map_indices: Sequence[int] = ()) -> None:
        BaseBackbone.__init__(self, init_cfg=init_cfg)
        self.kernel_size = check_kernel_size(kernel_size)
        self.depths, self.channels = self._parse_arch(arch)
        self.num_stages = len(self.depths)
        self.out_indices = self._parse_out_indices(out_indices,
                                                   self.num_stages)
        if not 0 <= frozen_stages <= self.num_stages:
            raise ConvNeXtArgumentError(
                f'BCSSLConvNeXt: frozen_stages must be in [0, '
                f'{self.num_stages}], got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.gap_before_final_norm = gap_before_final_norm
        self.map_indices = self._parse_out_indices(
            list(map_indices), self.num_stages, 'map_indices')
        if not set(self.map_indices) <= set(self.out_indices):
            raise ConvNeXtArgumentError(
                f'BCSSLConvNeXt: map_indices {tuple(map_indices)} must be '
                f'among out_indices {self.out_indices}')
        self.deploy = False

        # stochastic depth rate grows linearly over all blocks
        dpr = torch.linspace(
            0, drop_path_rate, sum(self.depths), device='cpu').tolist()

        # 4 downsampling layers, the first being the patchify stem
        # NOTE: torch's containers, not mmengine's, whose is_init property
        # TorchScript cannot compile (the same modules and names)
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(
                    in_channels,
                    self.channels[0],
                    kernel_size=stem_patch_size,
                    stride=stem_patch_size),
                build_norm(norm_cfg, self.channels[0]))
        ])
        self.stages = nn.ModuleList()
        block_idx = 0
        for i, (depth, channels) in enumerate(zip(self.depths, self.channels)):
            if i > 0:
                self.downsample_layers.append(
                    nn.Sequential(
                        build_norm(norm_cfg, self.channels[i - 1]),
                        nn.Conv2d(
                            self.channels[i - 1],
                            channels,
                            kernel_size=2,
                            stride=2)))
            self.stages.append(
                nn.Sequential(*[
                    BCSSLConvNeXtBlock(
                        channels,
                        kernel_size=kernel_size,
                        dw_norm_cfg=dw_norm_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                        drop_path_rate=dpr[block_idx + j],
                        layer_scale_init_value=layer_scale_init_value,
                        with_cp=with_cp,
                        linear_pw_conv=linear_pw_conv,
                        use_grn=use_grn) for j in range(depth)
                ]))
            block_idx += depth
            if i in self.out_indices:
                self.add_module(f'norm{i}', build_norm(norm_cfg, channels))

        self._freeze_stages()

    def _parse_arch(self, arch) -> Tuple[list, list]:
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ConvNeXtArgumentError(
                    f'BCSSLConvNeXt: unknown arch {arch!r}; choose one of '
                    f'{sorted(self.arch_settings)} or pass a dict with '
                    '"depths" and "channels"')
            arch = self.arch_settings[arch]
        if not isinstance(arch,
                          dict) or not {'depths', 'channels'} <= set(arch):
            raise ConvNeXtArgumentError(
                'BCSSLConvNeXt: arch dict needs "depths" and '
                f'"channels", got {arch!r}')
        depths, channels = list(arch['depths']), list(arch['channels'])
        if len(depths) != len(channels):
            raise ConvNeXtArgumentError(
                f'BCSSLConvNeXt: depths {depths} and channels '
                f'{channels} differ in length')
        return depths, channels

    @staticmethod
    def _parse_out_indices(out_indices,
                           num_stages: int,
                           key: str = 'out_indices') -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not -num_stages <= index < num_stages:
                raise ConvNeXtArgumentError(
                    f'BCSSLConvNeXt: {key} entry {index} '
                    f'is out of range for {num_stages} stages')
            parsed.append(index % num_stages)
        return tuple(parsed)

    @torch.jit.unused
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """mmpretrain ``ConvNeXt``'s forward: the outputs of the stages in
        ``out_indices``, each normed (pooled first if
        ``gap_before_final_norm`` and the stage is not in ``map_indices``).

        Args:
            x (torch.Tensor): Images, (N, C_in, H, W).

        Returns:
            tuple[torch.Tensor]: (N, C_i) or (N, C_i, H_i, W_i) per index.
        """
        # NOTE: not compiled by TorchScript, which cannot reach the out norms
        # by index (they are attributes ``norm{i}``, the names of
        # mmpretrain's checkpoints); BCSSLConvNeXtTimm scripts through its
        # own forward
        if not self.map_indices:
            return super().forward(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(self.downsample_layers[i](x))
            if i in self.out_indices:
                norm_layer = getattr(self, f'norm{i}')
                if self.gap_before_final_norm and i not in self.map_indices:
                    outs.append(
                        norm_layer(x.mean([-2, -1], keepdim=True)).flatten(1))
                else:
                    outs.append(norm_layer(x))
        return tuple(outs)

    def train(self, mode: bool = True) -> 'BCSSLConvNeXt':
        super().train(mode)  # also re-freezes the frozen stages
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def allow_missing_keys(self) -> Tuple[str, ...]:
        """The output norms of ``out_indices``: a classification or DINO
        backbone has only the last one."""
        return tuple(f'norm{i}.' for i in self.out_indices)

    def switch_to_deploy(self) -> None:
        """Switch every block to its deploy form (inference only).

        Outputs stay those of the eval-mode model (to float rounding) and
        NCHW-contiguous; the state dict loses ``dw_norm.*`` and ``gamma``.
        """
        for m in self.modules():
            if isinstance(m, BCSSLConvNeXtBlock):
                m.switch_to_deploy()
        # channels-last from the stem on: no NCHW copies between stages
        for layer in self.downsample_layers:
            for j, m in enumerate(layer):
                if isinstance(m, LayerNorm2d):
                    layer[j] = _convert_layer_norm2d(m,
                                                     ChannelsLastLayerNorm2d)
                elif isinstance(m, nn.Conv2d):
                    m.to(memory_format=torch.channels_last)
        self.deploy = True


# Checkpoint conversion: the names of official ConvNeXt, timm's ConvNeXt and
# the BC-SSL authors' DINO fork, as rules of the renaming engine
# (bcssl_mm/utils/state_dict_remap.py) that the converters in
# tools/model_converters apply; the role of timm's checkpoint_filter_fn.

# the depthwise conv of block j of stage i, in BCSSLConvNeXt's names
_DW_KEY = re.compile(r'stages\.(\d+)\.(\d+)\.depthwise_conv\.weight')
# what precedes the backbone keys in the authors' fork: its DDP wrapper and
# the DINO wrapper of student / teacher; neither in a bare backbone
_FORK_PREFIX = r'(?:module\.)?(?:backbone\.)?'


def official_convnext_rules(num_stages: int, prefix: str = '') -> List[Rule]:
    """Rules from official ConvNeXt backbone names to ``backbone.*`` ones.

    Official (facebookresearch/ConvNeXt) names, also used by the authors'
    DINO fork: ``downsample_layers.*`` (as in mmpretrain),
    ``stages.i.j.{dwconv,norm,pwconv1,pwconv2,gamma}`` and the final ``norm``.

    Args:
        num_stages (int): The final ``norm`` becomes ``norm{num_stages-1}``.
        prefix (str): Regular expression for what precedes the backbone keys,
            e.g. ``''`` or ``r'(?:module\\.)?(?:backbone\\.)?'``.

    Returns:
        list[Rule]: The rules, without the classifier.
    """
    block = prefix + r'stages\.(\d+)\.(\d+)\.'
    to_block = r'backbone.stages.\1.\2.'
    last = num_stages - 1
    return [
        Rule(prefix + r'downsample_layers\.(\d+)\.([01])\.(weight|bias)',
             r'backbone.downsample_layers.\1.\2.\3',
             'downsample_layers.* (unchanged)'),
        Rule(block + r'dwconv\.(weight|bias)', to_block + r'depthwise_conv.\3',
             'stages.i.j.dwconv -> depthwise_conv'),
        Rule(block + r'norm\.(weight|bias)', to_block + r'norm.\3',
             'stages.i.j.norm (unchanged)'),
        Rule(block + r'pwconv1\.(weight|bias)',
             to_block + r'pointwise_conv1.\3',
             'stages.i.j.pwconv1 -> pointwise_conv1'),
        Rule(block + r'pwconv2\.(weight|bias)',
             to_block + r'pointwise_conv2.\3',
             'stages.i.j.pwconv2 -> pointwise_conv2'),
        Rule(block + r'gamma', to_block + 'gamma',
             'stages.i.j.gamma (unchanged)'),
        Rule(prefix + r'norm\.(weight|bias)', rf'backbone.norm{last}.\1',
             f'norm (final) -> norm{last}'),
    ]


def _to_linear(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 1, 1) 1x1 conv weight -> (C_out, C_in) linear weight."""
    return weight.flatten(1) if weight.dim() == 4 else weight


def timm_convnext_rules(num_stages: int) -> List[Rule]:
    """Rules from timm ConvNeXt names to ``backbone.*`` and ``head.fc.*``.

    timm (``timm.create_model('convnext_*').state_dict()``): ``stem.{0,1}``,
    ``stages.i.downsample.{0,1}``, ``stages.i.blocks.j.{conv_dw,norm,mlp.fc1,
    mlp.fc2,gamma}`` (``mlp.fc*`` are 1x1 convs in the ``conv_mlp`` variants,
    e.g. atto, and are flattened to linear weights), ``head.norm`` (the final
    norm) and ``head.fc`` (mmpretrain ``LinearClsHead``'s ``head.fc``).

    Args:
        num_stages (int): ``head.norm`` becomes ``norm{num_stages-1}``.

    Returns:
        list[Rule]: The rules.
    """
    block = r'stages\.(\d+)\.blocks\.(\d+)\.'
    to_block = r'backbone.stages.\1.\2.'
    last = num_stages - 1
    return [
        Rule(r'stem\.([01])\.(weight|bias)', r'backbone.downsample_layers.0.'
             r'\1.\2', 'stem -> downsample_layers.0'),
        Rule(r'stages\.(\d+)\.downsample\.([01])\.(weight|bias)',
             r'backbone.downsample_layers.\1.\2.\3',
             'stages.i.downsample -> downsample_layers.i'),
        Rule(block + r'conv_dw\.(weight|bias)',
             to_block + r'depthwise_conv.\3',
             'stages.i.blocks.j.conv_dw -> stages.i.j.depthwise_conv'),
        Rule(block + r'norm\.(weight|bias)', to_block + r'norm.\3',
             'stages.i.blocks.j.norm -> stages.i.j.norm'),
        Rule(
            block + r'mlp\.fc1\.(weight|bias)',
            to_block + r'pointwise_conv1.\3',
            'stages.i.blocks.j.mlp.fc1 -> stages.i.j.pointwise_conv1 '
            '(1x1 conv weights flattened)', _to_linear),
        Rule(
            block + r'mlp\.fc2\.(weight|bias)',
            to_block + r'pointwise_conv2.\3',
            'stages.i.blocks.j.mlp.fc2 -> stages.i.j.pointwise_conv2 '
            '(1x1 conv weights flattened)', _to_linear),
        Rule(block + r'gamma', to_block + 'gamma',
             'stages.i.blocks.j.gamma -> stages.i.j.gamma'),
        Rule(r'head\.norm\.(weight|bias)', rf'backbone.norm{last}.\1',
             f'head.norm -> norm{last}'),
        Rule(r'head\.fc\.(weight|bias)', r'head.fc.\1', 'head.fc (unchanged)'),
    ]


def convnext_checkpoint_rules(state_dict: dict,
                              source: str) -> Tuple[str, List[Rule]]:
    """Detect an official or timm ConvNeXt state dict; return its rules.

    Official: ``downsample_layers.*``, ``stages.i.j.*``, ``norm.*`` and the
    classifier ``head.*`` (renamed ``head.fc.*``); timm: ``stem.*``, see
    :func:`timm_convnext_rules`. ConvNeXt V2 (GRN), timm's ``norm_pre`` /
    ``head.pre_logits`` variants and other stems match no rule, so
    :func:`~bcssl_mm.utils.state_dict_remap.remap` refuses them by name.

    Args:
        state_dict (dict): The source state dict.
        source (str): Its file, for error messages.

    Returns:
        tuple: ``('official' | 'timm', rules)``.

    Raises:
        ConversionError: Neither layout (or already BCSSLConvNeXt names).
    """
    if any(k.startswith('downsample_layers.') for k in state_dict):
        num_stages = num_indexed(state_dict, r'downsample_layers\.(\d+)\.')
        return 'official', official_convnext_rules(num_stages) + [
            Rule(r'head\.(weight|bias)', r'head.fc.\1', 'head -> head.fc'),
        ]
    if any(k.startswith('stem.') for k in state_dict):
        return 'timm', timm_convnext_rules(
            num_indexed(state_dict, r'stages\.(\d+)\.'))
    if any(k.startswith('backbone.downsample_layers.') for k in state_dict):
        raise ConversionError(
            f'{source}: keys start with "backbone.downsample_layers.": '
            'already in mmpretrain / BCSSLConvNeXt names, nothing to convert')
    raise ConversionError(
        f'{source}: neither an official ConvNeXt checkpoint (keys '
        "'downsample_layers.*', optionally under 'model') nor a timm ConvNeXt "
        f"state dict (keys 'stem.*'); first keys: {first_keys(state_dict)}")


def check_convnext_classifier(state_dict: dict, source: str) -> Optional[int]:
    """Check that ``head.fc.weight`` (if any) fits the final norm's width.

    Args:
        state_dict (dict): Converted tensors.
        source (str): The converted file, for error messages.

    Returns:
        int | None: The number of classes, ``None`` without a classifier.

    Raises:
        ConversionError: The classifier's input width is not the final
            norm's.
    """
    fc = state_dict.get('head.fc.weight')  # (num_classes, C_last)
    if fc is None:
        return None
    norm = next((v for k, v in state_dict.items()
                 if k.startswith('backbone.norm') and k.endswith('.weight')),
                None)
    if norm is None or fc.dim() != 2 or fc.shape[1] != norm.shape[0]:
        raise ConversionError(
            f'{source}: classifier weight {tuple(fc.shape)} does not match '
            'the width of the final norm '
            f'{None if norm is None else tuple(norm.shape)}')
    return int(fc.shape[0])


# the models of an authors' DINO fork checkpoint (top-level keys)
BCSSL_FORK_PARTS = ('teacher', 'student')


def bcssl_fork_rules(state_dict: dict, source: str) -> List[Rule]:
    """Rules from the authors' DINO fork's names to ``backbone.*`` ones.

    The fork's backbone uses official ConvNeXt names
    (:func:`official_convnext_rules`) under ``module.backbone.`` (optional),
    except that a block's depthwise conv and its BatchNorm are
    ``large_kernel.lkb_origin.{conv,bn}``; its DINO projection head
    (``module.head.*``) is dropped.

    Args:
        state_dict (dict): The student's or teacher's state dict of a fork
            checkpoint, or a bare backbone state dict of the fork.
        source (str): Where it comes from, for error messages.

    Returns:
        list[Rule]: The rules.

    Raises:
        ConversionError: No backbone key of the fork, or keys already in
            BCSSLConvNeXt's names.
    """
    num_stages = num_indexed(
        state_dict, _FORK_PREFIX + r'(?:stages|downsample_layers)\.(\d+)\.')
    if not num_stages:
        raise ConversionError(
            f'{source}: no key starts with '
            "'module.backbone.{downsample_layers,stages}.' (nor without "
            f"'module.' / 'backbone.'); first keys: {first_keys(state_dict)}")
    renamed = re.compile(
        _FORK_PREFIX +
        r'stages\.\d+\.\d+\.(?:depthwise_conv|dw_norm|pointwise_conv)')
    converted = next((k for k in state_dict if renamed.match(k)), None)
    if converted:
        raise ConversionError(
            f'{source}: keys are already in BCSSLConvNeXt names (e.g. '
            f'{converted!r}), not the fork\'s; for a bcssl_mm DINO checkpoint '
            'use tools/model_converters/extract_backbone.py')
    block = _FORK_PREFIX + r'stages\.(\d+)\.(\d+)\.large_kernel\.lkb_origin\.'
    to_block = r'backbone.stages.\1.\2.'
    bn = r'bn\.(weight|bias|running_mean|running_var|num_batches_tracked)'
    return [
        Rule(block + r'conv\.weight', to_block + 'depthwise_conv.weight',
             'stages.i.j.large_kernel.lkb_origin.conv -> depthwise_conv'),
        Rule(block + bn, to_block + r'dw_norm.\3',
             'stages.i.j.large_kernel.lkb_origin.bn -> dw_norm'),
        *official_convnext_rules(num_stages, _FORK_PREFIX),
        Rule(r'(?:module\.)?head\..+', None, 'DINO projection head'),
    ]


def infer_bcssl_convnext_cfg(state_dict: dict,
                             prefix: str = 'backbone.') -> Optional[dict]:
    """Infer the ``BCSSLConvNeXt`` arguments that ``state_dict`` describes.

    Depths from the number of blocks per stage, widths from the depthwise
    convs (then matched to an entry of ``arch_settings``), the kernel from the
    first depthwise conv, BN from ``dw_norm`` keys, layer scale from
    ``gamma`` keys, ``out_indices`` from the output norms ``norm{i}``.
    Anything inconsistent (another kernel in a later block, a missing block)
    is left for the strict load of :func:`save_bcssl_convnext_checkpoint` to
    report.

    Args:
        state_dict (dict): Converted tensors.
        prefix (str): The backbone keys' prefix. Defaults to 'backbone.'.

    Returns:
        dict | None: Keyword arguments of ``BCSSLConvNeXt``, or ``None`` when
        there is no ``stages.i.j.depthwise_conv.weight`` (not a ConvNeXt).

    Raises:
        ConversionError: A stage has no block, or the first depthwise weight
            is not (C, 1, k, k).
    """
    sd = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    blocks: Dict[int, Dict[int, str]] = {}
    for key in sd:
        m = _DW_KEY.fullmatch(key)
        if m:
            blocks.setdefault(int(m.group(1)), {})[int(m.group(2))] = key
    if not blocks:
        return None
    num_stages = max(blocks) + 1
    empty = [i for i in range(num_stages) if i not in blocks]
    if empty:
        raise ConversionError(
            f'stages {empty} have no {prefix}stages.i.j.depthwise_conv.weight')
    # a missing block j < max j shows up as missing keys in the strict load
    depths = [max(blocks[i]) + 1 for i in range(num_stages)]
    first = [sd[blocks[i][min(blocks[i])]] for i in range(num_stages)]
    channels = [w.shape[0] for w in first]
    dw = first[0]  # (C, 1, k, k)
    if dw.dim() != 4 or dw.shape[-1] != dw.shape[-2]:
        raise ConversionError(f'{prefix}{blocks[0][min(blocks[0])]} has '
                              f'shape {tuple(dw.shape)}, not (C, 1, k, k)')
    arch: Union[str, dict] = dict(depths=depths, channels=channels)
    for name, setting in BCSSLConvNeXt.arch_settings.items():
        if (list(setting['depths']) == depths
                and list(setting['channels']) == channels):
            arch = name
            break
    stem = sd.get('downsample_layers.0.0.weight')  # (C0, C_in, p, p)
    return dict(
        arch=arch,
        kernel_size=int(dw.shape[-1]),
        dw_norm_cfg=dict(type='BN') if any('.dw_norm.' in k
                                           for k in sd) else None,
        in_channels=int(stem.shape[1]) if stem is not None else 3,
        stem_patch_size=int(stem.shape[-1]) if stem is not None else 4,
        # only whether it is > 0 matters: the checkpoint sets the values
        layer_scale_init_value=1e-6 if any(k.endswith('.gamma')
                                           for k in sd) else 0.,
        out_indices=tuple(
            i for i in range(num_stages) if f'norm{i}.weight' in sd))


def describe_bcssl_convnext_cfg(cfg: dict) -> str:
    """One line: ``BCSSLConvNeXt(arch='atto', kernel_size=9, ...)``."""
    arch = cfg['arch']
    if isinstance(arch, str):
        setting = BCSSLConvNeXt.arch_settings[arch]
        arch_str = (f"arch='{arch}' (depths {list(setting['depths'])}, "
                    f"channels {list(setting['channels'])})")
    else:
        arch_str = f'arch={arch}'
    norm = cfg['dw_norm_cfg']['type'] if cfg['dw_norm_cfg'] else None
    return (f'BCSSLConvNeXt({arch_str}, kernel_size={cfg["kernel_size"]}, '
            f'dw_norm={norm}, layer_scale={cfg["layer_scale_init_value"] > 0},'
            f' in_channels={cfg["in_channels"]}, '
            f'stem_patch_size={cfg["stem_patch_size"]}, '
            f'out_indices={cfg["out_indices"]})')


def save_bcssl_convnext_checkpoint(state_dict: dict,
                                   filename: str,
                                   meta: dict,
                                   source: str,
                                   force: bool = False) -> dict:
    """Save converted tensors after a strict load into the model they describe.

    Infers the ``BCSSLConvNeXt`` that the ``backbone.*`` keys describe
    (:func:`infer_bcssl_convnext_cfg`), adds its arguments to
    ``meta['backbone']`` and writes the checkpoint with
    :func:`~bcssl_mm.utils.state_dict_remap.save_checkpoint`, which moves it
    into place only after :func:`load_backbone_checkpoint` has loaded it
    strictly (prefix ``backbone.``) into that backbone.

    Args:
        state_dict (dict): ``backbone.*`` (and e.g. ``head.fc.*``) tensors.
        filename (str): Output path.
        meta (dict): Plain Python values describing the conversion.
        source (str): The converted file, for messages.
        force (bool): Overwrite an existing ``filename``. Defaults to False.

    Returns:
        dict: The inferred ``BCSSLConvNeXt`` arguments.

    Raises:
        ConversionError: Nothing to infer a BCSSLConvNeXt from, or the result
            does not load strictly into it; the message lists the keys.
    """
    cfg = infer_bcssl_convnext_cfg(state_dict)
    if cfg is None:
        raise ConversionError(
            f'{source}: the converted checkpoint has no '
            'backbone.stages.i.j.depthwise_conv.weight, so it is not a '
            'BC-SSL / ConvNeXt backbone')
    dw_key = next(
        k for k in state_dict if _DW_KEY.fullmatch(k[len('backbone.'):]))
    print(f'kernel size: {cfg["kernel_size"]} ({dw_key} '
          f'{tuple(state_dict[dw_key].shape)})')
    print(f'backbone: {describe_bcssl_convnext_cfg(cfg)}')

    def verify(tmp: str) -> None:
        try:
            load_backbone_checkpoint(
                BCSSLConvNeXt(**cfg), tmp, prefix='backbone.')
        except CheckpointMismatchError as e:
            raise ConversionError(
                f'{source}: the converted checkpoint does not load strictly '
                f'into {describe_bcssl_convnext_cfg(cfg)}; nothing was '
                f'written to {filename}:\n' +
                str(e).replace(tmp, 'converted checkpoint')) from None
        print('verified: loads strictly into BCSSLConvNeXt '
              "(load_backbone_checkpoint, prefix 'backbone.')")

    dw_norm_cfg = dict(cfg['dw_norm_cfg']) if cfg['dw_norm_cfg'] else None
    meta = dict(meta, backbone=dict(cfg, dw_norm_cfg=dw_norm_cfg))
    save_checkpoint(state_dict, filename, meta, verify=verify, force=force)
    return cfg
