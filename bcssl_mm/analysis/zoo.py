"""The model vocabulary of the analysis tools, its builder, and images.

Every tool of ``tools/analysis_tools/`` names models the same way, after
timm's model names (lower case, ``_``-separated, size spelt out):

* ``bcssl_convnext_{arch}_k{K}``: BC-SSL, ``BCSSLConvNeXt`` of ``arch``
  (``atto``, ``femto``, ``pico``, ``nano``, ``tiny``, ``small``, ``base``,
  ``large``, ...) with depthwise kernel ``K`` (odd, >= 3) and a BN after
  each depthwise conv, e.g. ``bcssl_convnext_tiny_k9`` (the paper's
  BC-SSL-T);
* ``..._nobn`` after it: the same network without that BN, i.e. ConvNeXt of
  kernel ``K`` in our implementation (``bcssl_convnext_tiny_k7_nobn`` is
  ConvNeXt-T);
* ``..._deploy`` last: the eval model after ``switch_to_deploy()`` (BN and
  layer scale folded; same outputs), e.g. ``bcssl_convnext_tiny_k9_deploy``;
* the baselines, as timm names them, built by mmpretrain:
  ``convnext_tiny``, ``convnext_small``, ``resnet50``,
  ``vit_small_patch16_224`` (DeiT-S shape, DINO's ViT-S/16),
  ``swin_tiny_patch4_window7_224``, ``swin_small_patch4_window7_224``;
* ``timm::{name}``: any model of timm's registry, built by
  ``timm.create_model`` (``timm::swin_tiny_patch4_window7_224``), the
  ``scope::`` prefix read as mmengine reads ``mmdet::`` in config paths.

All but ``timm::`` names are mmpretrain ``ImageClassifier``s with a
``backbone``; the CAM and ERF tools take those only. Models are randomly
initialised; :func:`load_model` loads a checkpoint through mmengine's
``CheckpointLoader`` (the package's local loader). The names used before this
vocabulary (``bcssl-t-k9``, ``swin-t-timm``, ``convnext-t-ours``, ...) are
refused with their new name (``RENAMED``).
"""
import argparse
import logging
import os
import os.path as osp
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import timm
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS
from pytorch_grad_cam.utils.image import preprocess_image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..models.backbones.bcssl_convnext import BCSSLConvNeXt, check_kernel_size
from ..models.utils import CheckpointMismatchError, extract_state_dict

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
TIMM_SCOPE = 'timm::'
BCSSL_NAME = re.compile(r'bcssl_convnext_([a-z]+)_k(\d+)(_nobn)?(_deploy)?')
# name -> (family, mmpretrain arch) of the baselines
BASELINES = {
    'convnext_tiny': ('convnext', 'tiny'),
    'convnext_small': ('convnext', 'small'),
    'resnet50': ('resnet', 50),
    'vit_small_patch16_224': ('vit', 'deit-small'),
    'swin_tiny_patch4_window7_224': ('swin', 'tiny'),
    'swin_small_patch4_window7_224': ('swin', 'small'),
}
# names of the tools before this vocabulary -> their names now
RENAMED = {
    'convnext-t': 'convnext_tiny',
    'convnext-s': 'convnext_small',
    'convnext-t-timm': 'timm::convnext_tiny',
    'convnext-t-ours': 'bcssl_convnext_tiny_k7_nobn',
    'resnet50-timm': 'timm::resnet50',
    'vit-s': 'vit_small_patch16_224',
    'vit-s-timm': 'timm::vit_small_patch16_224',
    'swin-t': 'swin_tiny_patch4_window7_224',
    'swin-t-mmpretrain': 'swin_tiny_patch4_window7_224',
    'swin-t-timm': 'timm::swin_tiny_patch4_window7_224',
    'swin-s': 'swin_small_patch4_window7_224',
    'swin-s-mmpretrain': 'swin_small_patch4_window7_224',
    'swin-s-timm': 'timm::swin_small_patch4_window7_224',
}
OLD_BCSSL_NAME = re.compile(r'bcssl-([a-z]+)-k(\d+)(-deploy)?')
OLD_BCSSL_ARCHS = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}
# mmpretrain's Swin asserts when a feature map is smaller than its 7x7 window
# unless pad_small_map=True; the last stage (stride 32) is 7x7 at 224 px.
SWIN_MIN_UNPADDED_SIZE = 7 * 32
NAME_HELP = (f'bcssl_convnext_{{{"|".join(BCSSLConvNeXt.arch_settings)}}}'
             '_k{K}[_nobn][_deploy] (K odd >= 3), ' + ', '.join(BASELINES) +
             ', timm::{any timm model name}')


@contextmanager
def quiet_mmengine() -> Iterator[None]:
    """Silence mmengine's INFO lines (one per parameter or parameter group
    when models and optimizers are built without a log file)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class ModelSpec:
    """A model of the analysis vocabulary (see the module docstring).

    Args:
        name (str): Its name, e.g. ``bcssl_convnext_tiny_k9``.
        family (str): 'bcssl', 'convnext', 'resnet', 'vit', 'swin' (built by
            mmpretrain) or 'timm' (built by timm).
        arch (str | int | dict, optional): The family's arch: a
            ``BCSSLConvNeXt`` arch name or dict, the mmpretrain arch of a
            baseline (ResNet: its depth), the timm model name.
        kernel_size (int, optional): BC-SSL depthwise kernel.
        with_bn (bool): BC-SSL with the BN after the depthwise conv; False
            gives plain ConvNeXt of that kernel. Defaults to True.
        deploy (bool): BC-SSL after ``switch_to_deploy()``. Defaults to False.
    """
    name: str
    family: str
    arch: Union[str, int, dict, None] = None
    kernel_size: Optional[int] = None
    with_bn: bool = True
    deploy: bool = False


def renamed_hint(name: str) -> str:
    """`` (now NEW)`` for a name of the tools' old vocabularies, else ''."""
    new = RENAMED.get(name)
    match = OLD_BCSSL_NAME.fullmatch(name)
    if match is not None:
        arch = OLD_BCSSL_ARCHS.get(match.group(1), match.group(1))
        new = (f'bcssl_convnext_{arch}_k{match.group(2)}'
               f'{"_deploy" if match.group(3) else ""}')
    return f' (renamed: use {new!r})' if new else ''


def parse_model_name(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; a ``ValueError`` lists the valid
    names when it is not one."""
    if name in BASELINES:
        return ModelSpec(name, *BASELINES[name])
    if name.startswith(TIMM_SCOPE):
        timm_name = name[len(TIMM_SCOPE):]
        if not timm.is_model(timm_name):
            raise ValueError(f'unknown model {name!r}: timm has no model '
                             f'{timm_name!r} (see timm.list_models())')
        return ModelSpec(name, 'timm', timm_name)
    match = BCSSL_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f'unknown model {name!r}{renamed_hint(name)}; '
                         f'valid names: {NAME_HELP}')
    arch, kernel_size, nobn, deploy = match.groups()
    if arch not in BCSSLConvNeXt.arch_settings:
        raise ValueError(f'unknown BC-SSL arch {arch!r} in model {name!r}; '
                         f'choose from {sorted(BCSSLConvNeXt.arch_settings)}')
    try:
        kernel_size = check_kernel_size(int(kernel_size))
    except ValueError as e:
        raise ValueError(f'model {name!r}: {e}') from e
    return ModelSpec(name, 'bcssl', arch, kernel_size, not nobn, bool(deploy))


def parse_model_names(names: Sequence[str],
                      mmpretrain_only: bool = False) -> List[ModelSpec]:
    """:func:`parse_model_name` of each name; with ``mmpretrain_only``
    (tools that need ``model.backbone``) ``timm::`` names are refused."""
    specs = [parse_model_name(name) for name in names]
    timm_names = [s.name for s in specs if s.family == 'timm']
    if mmpretrain_only and timm_names:
        raise ValueError(f'models {timm_names}: this tool takes the '
                         'mmpretrain models only (names without timm::)')
    return specs


def _mmpretrain_parts(spec: ModelSpec, img_size: int,
                      swin_pad_small_map: Optional[bool]) -> tuple:
    """Backbone config, neck config and head input width of ``spec``."""
    gap = dict(type='GlobalAveragePooling')
    if spec.family == 'bcssl':
        arch = spec.arch
        channels = (BCSSLConvNeXt.arch_settings[arch]
                    if isinstance(arch, str) else arch)['channels']
        return dict(
            type='BCSSLConvNeXt',
            arch=arch,
            kernel_size=spec.kernel_size,
            dw_norm_cfg=dict(type='BN') if spec.with_bn else None), None, \
            channels[-1]
    if spec.family == 'convnext':
        # mmpretrain's ConvNeXt pools before its final norm: (N, C) out
        return dict(type='ConvNeXt', arch=spec.arch), None, 768
    if spec.family == 'resnet':
        return dict(type='ResNet', depth=spec.arch), gap, 2048
    if spec.family == 'vit':
        return dict(
            type='VisionTransformer',
            arch=spec.arch,
            img_size=img_size,
            patch_size=16), None, 384
    if spec.family == 'swin':
        if swin_pad_small_map is None:
            swin_pad_small_map = img_size < SWIN_MIN_UNPADDED_SIZE
        return dict(
            type='SwinTransformer',
            arch=spec.arch,
            img_size=img_size,
            pad_small_map=swin_pad_small_map), gap, 768
    raise ValueError(f'model {spec.name!r}: unknown family {spec.family!r}')


def _build_timm(spec: ModelSpec, img_size: int, num_classes: int) -> nn.Module:
    kwargs = dict(num_classes=num_classes)
    # models with a fixed input size (ViT, Swin) take the size as argument
    if timm.get_pretrained_cfg(spec.arch).fixed_input_size:
        kwargs['img_size'] = img_size
    return timm.create_model(spec.arch, **kwargs)


def build_classifier(spec: ModelSpec,
                     img_size: int = 224,
                     num_classes: int = 1000,
                     swin_pad_small_map: Optional[bool] = None) -> nn.Module:
    """Build and initialise the classifier of ``spec`` (random weights).

    Args:
        spec (ModelSpec): The model.
        img_size (int): Input side; sets ViT's position embedding and Swin's
            ``pad_small_map``. Defaults to 224.
        num_classes (int): Classes of the linear head. Defaults to 1000.
        swin_pad_small_map (bool, optional): mmpretrain Swin's
            ``pad_small_map``; None sets it where a map is smaller than the
            window (``img_size`` < 224), as the original Swin does.

    Returns:
        nn.Module: The classifier in eval mode; ``model(x)`` gives logits.
    """
    if spec.family == 'timm':
        return _build_timm(spec, img_size, num_classes).eval()
    backbone, neck, in_channels = _mmpretrain_parts(spec, img_size,
                                                    swin_pad_small_map)
    head = dict(
        type='LinearClsHead', num_classes=num_classes, in_channels=in_channels)
    if spec.family == 'vit':
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
    with quiet_mmengine():
        model.init_weights()
    model.eval()
    if spec.deploy:
        model.backbone.switch_to_deploy()
    return model


def build_model(name: str,
                img_size: int = 224,
                num_classes: int = 1000,
                swin_pad_small_map: Optional[bool] = None) -> nn.Module:
    """Build the model ``name`` (random weights, eval mode); see
    :func:`build_classifier` for the arguments."""
    return build_classifier(
        parse_model_name(name), img_size, num_classes, swin_pad_small_map)


def load_classifier_weights(model: nn.Module, filename: str) -> str:
    """Load a checkpoint of a classifier (or a model with its backbone).

    The file is read by mmengine's ``CheckpointLoader`` (for local files the
    loader that ``bcssl_mm`` registers), its ``state_dict`` (or ``model``)
    taken and a leading ``module.`` removed. Every backbone tensor must be in
    it with the model's shape; other parts of the model (neck, head) absent
    from it keep their random init, so the backbone of a DINO teacher or of a
    detector loads under a random head; keys the model lacks (a detector's
    heads) are ignored.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier``.
        filename (str): Path or URL of the checkpoint.

    Returns:
        str: One line saying what was loaded and what was left.

    Raises:
        CheckpointMismatchError: Backbone tensors missing, or any tensor of
            the wrong shape; the message lists them.
    """
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    state_dict = {
        re.sub(r'^module\.', '', k): v
        for k, v in extract_state_dict(checkpoint).items()
    }
    expected = model.state_dict()
    missing = [
        k for k in expected
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    missing_backbone = [k for k in missing if k.startswith('backbone.')]
    mis_shaped = [
        f'{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(expected[k].shape)}' for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing_backbone or mis_shaped:
        lines = [f'{filename} does not fit {type(model.backbone).__name__}:']
        for title, keys in (('missing backbone keys', missing_backbone),
                            ('mis-shaped keys', mis_shaped)):
            if keys:
                lines.append(f'  {len(keys)} {title}:')
                lines.extend(f'    {k}' for k in keys)
        raise CheckpointMismatchError('\n'.join(lines))
    loaded = {k: v for k, v in state_dict.items() if k in expected}
    model.load_state_dict(loaded, strict=False)
    kept = sorted({k.split('.')[0] for k in missing})
    return (f'{filename}: loaded {len(loaded)} tensors, ignored '
            f'{len(state_dict) - len(loaded)}; random init kept: '
            f'{", ".join(kept) or "none"}')


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
        if spec.family == 'timm':
            raise ValueError(f'--checkpoint of {spec.name!r}: only mmpretrain '
                             'models load checkpoints here')
        print(load_classifier_weights(model, checkpoint))
    return model.to(device).eval()


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
        '--models', nargs='+', default=list(default_models), help=NAME_HELP)
    parser.add_argument(
        '--checkpoint',
        nargs='*',
        default=[],
        metavar='NAME=PATH',
        help='weights of a model of --models: a checkpoint of the whole '
        'classifier, or one whose backbone.* keys hold all of its backbone '
        '(random init otherwise)')
