"""Models and images shared by the analysis tools (CAM, ERF, complexity).

A model is named on the command line as ``bcssl-{t|s|b|l|atto|...}-k{K}``,
``resnet50``, ``vit-s`` or ``swin-t`` and built as an mmpretrain
``ImageClassifier`` (random init unless a checkpoint is loaded);
``build_classifier`` also builds Swin-S (family ``'swin-s'``) for the
complexity table. ``count_macs`` counts multiply-adds with mmengine's
``FlopAnalyzer``, attention included.
"""
import argparse
import logging
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS
from pytorch_grad_cam.utils.image import preprocess_image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..models.backbones.bcssl_convnext import BCSSLConvNeXt, check_kernel_size

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
FIXED_MODELS = ('resnet50', 'vit-s', 'swin-t')
BCSSL_ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}
# mmpretrain's Swin asserts when a feature map is smaller than its 7x7 window
# unless pad_small_map=True; the last stage (stride 32) is 7x7 at 224 px.
SWIN_MIN_UNPADDED_SIZE = 7 * 32
# model family -> mmpretrain SwinTransformer arch
SWIN_ARCHS = {'swin-t': 'tiny', 'swin-s': 'small'}


@dataclass(frozen=True)
class ModelSpec:
    """A model of the comparison.

    Args:
        name (str): Name given on the command line, e.g. ``bcssl-t-k9``.
        family (str): 'bcssl', 'resnet50', 'vit-s', 'swin-t' or 'swin-s'
            (the last is built by ``build_classifier`` only; the CAM and ERF
            tools do not take it).
        arch (str | dict, optional): BC-SSL arch (``BCSSLConvNeXt``'s).
        kernel_size (int, optional): BC-SSL depthwise kernel.
        with_bn (bool): BC-SSL with the BN after the depthwise conv; False
            gives plain ConvNeXt of that kernel. Defaults to True.
    """
    name: str
    family: str
    arch: Union[str, dict, None] = None
    kernel_size: Optional[int] = None
    with_bn: bool = True


def parse_model_name(name: str) -> ModelSpec:
    """Parse ``bcssl-{t|s|b|l|atto|...}-k{K}``, ``resnet50``, ``vit-s``,
    ``swin-t``."""
    if name in FIXED_MODELS:
        return ModelSpec(name, name)
    match = re.fullmatch(r'bcssl-([a-z]+)-k(\d+)', name)
    if match is None:
        raise ValueError(
            f'unknown model {name!r}: use bcssl-{{t|s|b|l|atto|femto|pico|'
            f'nano|tiny|small|base}}-k{{K}} or one of {FIXED_MODELS}')
    arch = BCSSL_ARCH_ALIASES.get(match.group(1), match.group(1))
    if arch not in BCSSLConvNeXt.arch_settings:
        raise ValueError(f'unknown BC-SSL arch {match.group(1)!r} in {name!r};'
                         f' choose from {sorted(BCSSL_ARCH_ALIASES)} or '
                         f'{sorted(BCSSLConvNeXt.arch_settings)}')
    return ModelSpec(name, 'bcssl', arch,
                     check_kernel_size(int(match.group(2))))


def build_classifier(spec: ModelSpec,
                     img_size: int = 224,
                     num_classes: int = 1000) -> nn.Module:
    """Build and initialise the mmpretrain ``ImageClassifier`` of ``spec``.

    Args:
        spec (ModelSpec): The model.
        img_size (int): Input side; sets ViT's position embedding and Swin's
            ``pad_small_map``. Defaults to 224.
        num_classes (int): Classes of the linear head. Defaults to 1000.

    Returns:
        nn.Module: The classifier in eval mode; ``model(x)`` gives logits.
    """
    gap = dict(type='GlobalAveragePooling')
    if spec.family == 'bcssl':
        arch = spec.arch
        channels = (BCSSLConvNeXt.arch_settings[arch]
                    if isinstance(arch, str) else arch)['channels']
        backbone = dict(
            type='BCSSLConvNeXt',
            arch=arch,
            kernel_size=spec.kernel_size,
            dw_norm_cfg=dict(type='BN') if spec.with_bn else None)
        neck, in_channels = None, channels[-1]
    elif spec.family == 'resnet50':
        backbone = dict(type='ResNet', depth=50)
        neck, in_channels = gap, 2048
    elif spec.family == 'vit-s':
        backbone = dict(
            type='VisionTransformer',
            arch='deit-small',
            img_size=img_size,
            patch_size=16)
        neck, in_channels = None, 384
    elif spec.family in SWIN_ARCHS:
        backbone = dict(
            type='SwinTransformer',
            arch=SWIN_ARCHS[spec.family],
            img_size=img_size,
            pad_small_map=img_size < SWIN_MIN_UNPADDED_SIZE)
        neck, in_channels = gap, 768
    else:
        raise ValueError(f'unknown model family {spec.family!r}')
    head = dict(
        type='LinearClsHead', num_classes=num_classes, in_channels=in_channels)
    if spec.family == 'vit-s':
        # NOTE: VisionTransformerClsHead initialises its Linear to 0, which
        # makes every Grad-CAM of a randomly initialised ViT exactly 0; use
        # LinearClsHead's N(0, 0.01) init (a checkpoint overwrites it).
        head.update(
            type='VisionTransformerClsHead',
            init_cfg=dict(type='Normal', layer='Linear', std=0.01))
    model = MODELS.build(
        dict(
            _scope_='mmpretrain',
            type='ImageClassifier',
            backbone=backbone,
            neck=neck,
            head=head))
    # mmengine logs one INFO line per parameter without a log file
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.eval()


def sdpa_flop_jit(inputs: List, outputs: List) -> int:
    """Multiply-adds of ``aten::scaled_dot_product_attention``.

    ``Q K^T`` and ``A V``: ``B * L * S * (E + Ev)`` for query
    ``(B, .., L, E)``, key ``(B, .., S, E)`` and value ``(B, .., S, Ev)``;
    the softmax and scaling are not counted, as for every elementwise op of
    ``FlopAnalyzer``.
    """
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = int(np.prod(q[:-2]))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module, img_size: int = 224) -> int:
    """Multiply-adds of ``model`` on one ``img_size`` x ``img_size`` image.

    mmengine's ``FlopAnalyzer`` (fvcore's counting: convs, linears,
    ``matmul``/``bmm``/``einsum``, norms). It counts attention written as
    ``matmul`` (mmpretrain's Swin window attention) but has no handle for the
    fused ``aten::scaled_dot_product_attention`` (mmpretrain's and timm's ViT)
    and would silently drop it; ``sdpa_flop_jit`` counts it here.

    Args:
        model (nn.Module): Model in eval mode taking ``(1, 3, S, S)``.
        img_size (int): Input side ``S``. Defaults to 224.
    """
    analyzer = FlopAnalyzer(model, torch.randn(1, 3, img_size, img_size))
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())


def tokens_to_map(tokens: torch.Tensor,
                  num_extra_tokens: int = 0,
                  hw_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Reshape tokens ``(N, extra + H * W, C)`` to a map ``(N, C, H, W)``.

    Args:
        tokens (torch.Tensor): Tokens in row-major order after the extra
            (class) tokens.
        num_extra_tokens (int): Leading tokens to drop (1 for ViT's class
            token, 0 for Swin). Defaults to 0.
        hw_shape (tuple[int, int], optional): ``(H, W)``; a square map is
            assumed when not given.
    """
    tokens = tokens[:, num_extra_tokens:]  # (N, H * W, C)
    n, length, c = tokens.shape
    if hw_shape is None:
        side = int(round(length**0.5))
        if side * side != length:
            raise ValueError(f'{length} tokens do not form a square map; '
                             'pass hw_shape')
        hw_shape = (side, side)
    return tokens.reshape(n, *hw_shape, c).permute(0, 3, 1, 2)  # (N, C, H, W)


def parse_checkpoints(pairs: Sequence[str],
                      model_names: Sequence[str]) -> Dict[str, str]:
    """Parse ``NAME=PATH`` pairs; every NAME must be one of ``model_names``."""
    checkpoints = {}
    for pair in pairs or ():
        name, sep, path = pair.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--checkpoint expects NAME=PATH, got {pair!r}')
        if name not in model_names:
            raise ValueError(f'--checkpoint {pair!r}: {name!r} is not one of '
                             f'--models {list(model_names)}')
        checkpoints[name] = path
    return checkpoints


def load_model(spec: ModelSpec,
               img_size: int,
               num_classes: int,
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               seed: int = 0) -> nn.Module:
    """Build ``spec`` (random init from ``seed``), load weights, move it."""
    torch.manual_seed(seed)
    model = build_classifier(spec, img_size, num_classes)
    if checkpoint is not None:
        # mmengine warns about missing / unexpected keys (strict=False), so a
        # backbone-only checkpoint still loads under a random head
        load_checkpoint(model, checkpoint, map_location='cpu', strict=False)
    return model.to(device).eval()


def list_images(img_dir: str, max_images: Optional[int] = None) -> List[str]:
    """Sorted image files (jpg, jpeg, png, bmp) directly under ``img_dir``."""
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder {img_dir!r} does not exist')
    files = sorted(
        osp.join(img_dir, f) for f in os.listdir(img_dir)
        if f.lower().endswith(IMG_EXTENSIONS))
    if not files:
        raise FileNotFoundError(
            f'no images ({", ".join(IMG_EXTENSIONS)}) in folder {img_dir!r}')
    return files[:max_images] if max_images else files


def load_images(paths: Sequence[str],
                img_size: int) -> Tuple[np.ndarray, torch.Tensor]:
    """Read, resize to ``img_size`` and ImageNet-normalise images.

    Returns:
        tuple: RGB images in [0, 1], ``(N, S, S, 3)`` float32, and the
        normalised batch ``(N, 3, S, S)``.
    """
    rgbs = []
    for path in paths:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'cannot read image {path!r}')
        bgr = cv2.resize(
            bgr, (img_size, img_size), interpolation=cv2.INTER_LINEAR)
        rgbs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    rgbs = np.stack(rgbs).astype(np.float32) / 255.  # (N, S, S, 3)
    batch = torch.cat([
        preprocess_image(img, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        for img in rgbs
    ])  # (N, 3, S, S)
    return rgbs, batch


def add_model_args(parser: argparse.ArgumentParser,
                   default_models: Sequence[str]) -> None:
    """Add the ``--models`` and ``--checkpoint NAME=PATH`` arguments."""
    parser.add_argument(
        '--models',
        nargs='+',
        default=list(default_models),
        help='bcssl-{t|s|b|atto|...}-k{K}, resnet50, vit-s, swin-t')
    parser.add_argument(
        '--checkpoint',
        nargs='*',
        default=[],
        metavar='NAME=PATH',
        help='weights of a model of --models (mmengine checkpoint of the '
        'whole classifier; random init otherwise)')
