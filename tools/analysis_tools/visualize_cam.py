"""Grad-CAM / Eigen-CAM heatmaps of BC-SSL and baseline backbones (Table 6).

Paper: https://arxiv.org/abs/2312.05695, Table 6 compares the class activation
maps of BC-SSL with ResNet-50, ViT-S and Swin-T. The CAMs are computed by the
pytorch-grad-cam package (``GradCAM``, ``EigenCAM``); the models are mmpretrain
``ImageClassifier``s, randomly initialised unless ``--checkpoint`` gives
weights. The output is one PNG grid: a row per model (and method), a column
per image, the model/method named in a left margin of ``LABEL_MARGIN`` pixels;
it is ``rows * img_size`` pixels high, ``LABEL_MARGIN + cols * img_size`` wide.

    python tools/analysis_tools/visualize_cam.py --img-dir data/shapes/val \\
        --models bcssl_convnext_tiny_k9 resnet50 vit_small_patch16_224 \\
        swin_tiny_patch4_window7_224 --method both \\
        --checkpoint bcssl_convnext_tiny_k9=work_dirs/linear/epoch_100.pth \\
        --out work_dirs/cam/cam_grid.png

Model names: ``bcssl_mm.analysis.zoo`` (the mmpretrain models: not
``timm::``). A checkpoint must hold the whole backbone (``backbone.*`` keys)
with the model's shapes; a head it lacks stays random.

CAM target layers: BC-SSL and ConvNeXt, the last stage; ResNet-50, the last
bottleneck; ViT-S and Swin, the first LayerNorm of the last block, its tokens
reshaped to a 2-D map (ViT: the class token dropped; Swin: mmpretrain gives
``(N, H * W, C)`` in row-major order and no class token).
"""
import argparse
import os
import os.path as osp
from functools import partial
from typing import Callable, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from bcssl_mm.analysis import (ModelSpec, add_model_args, list_images,
                               load_images, load_model, parse_checkpoints,
                               parse_model_names, tokens_to_map)
from bcssl_mm.utils import CheckpointLoadError

CAM_METHODS = {'gradcam': GradCAM, 'eigencam': EigenCAM}
METHOD_TITLES = {'gradcam': 'Grad-CAM', 'eigencam': 'Eigen-CAM'}
# grid width = LABEL_MARGIN + num_images * img_size
LABEL_MARGIN = 160


def cam_target(spec: ModelSpec,
               model: nn.Module) -> Tuple[nn.Module, Optional[Callable]]:
    """The CAM target layer of ``model`` and its ``reshape_transform``."""
    backbone = model.backbone
    if spec.family in ('bcssl', 'convnext'):
        return backbone.stages[-1], None
    if spec.family == 'resnet':
        return backbone.layer4[-1], None
    if spec.family == 'vit':
        return backbone.layers[-1].ln1, partial(
            tokens_to_map, num_extra_tokens=backbone.num_extra_tokens)
    if spec.family == 'swin':
        # mmpretrain 1.2.0's SwinBlock names its first LayerNorm ``norm1``;
        # its output is (N, H * W, C), no class token
        return backbone.stages[-1].blocks[-1].norm1, tokens_to_map
    raise ValueError(f'model {spec.name!r}: unknown family {spec.family!r}')


def compute_cams(model: nn.Module,
                 target_layer: nn.Module,
                 reshape_transform: Optional[Callable],
                 inputs: torch.Tensor,
                 method: str,
                 target_class: Optional[int] = None) -> np.ndarray:
    """CAMs ``(N, H, W)`` in [0, 1] of one method for a batch of images.

    Args:
        model (nn.Module): Classifier whose forward gives logits.
        target_layer (nn.Module): Layer whose activations are weighted.
        reshape_transform (callable, optional): Maps the layer's output to
            ``(N, C, h, w)``.
        inputs (torch.Tensor): Normalised images ``(N, 3, H, W)``.
        method (str): 'gradcam' or 'eigencam'.
        target_class (int, optional): Class whose score Grad-CAM explains;
            the predicted class of each image when None. Eigen-CAM ignores it.
    """
    cam = CAM_METHODS[method](
        model=model,
        target_layers=[target_layer],
        reshape_transform=reshape_transform)
    targets = None if target_class is None else [
        ClassifierOutputTarget(target_class)
    ] * len(inputs)
    # NOTE: not ``with cam:``: BaseCAM.__exit__ (grad-cam 1.5.x) swallows
    # IndexError, which would hide e.g. an out-of-range target class
    try:
        return cam(input_tensor=inputs, targets=targets)
    finally:
        cam.activations_and_grads.release()


def draw_label(lines: Sequence[str],
               height: int,
               width: int = LABEL_MARGIN) -> np.ndarray:
    """A white ``(height, width, 3)`` BGR panel with centred text lines."""
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    font, thickness, scale = cv2.FONT_HERSHEY_SIMPLEX, 1, 0.5
    while scale > 0.2:
        sizes = [cv2.getTextSize(s, font, scale, thickness)[0] for s in lines]
        line_h = max(h for _, h in sizes) + 6
        if (max(w for w, _ in sizes) <= width - 8
                and line_h * len(lines) <= height):
            break
        scale -= 0.05
    top = (height - line_h * len(lines)) // 2
    for i, (text, (w, h)) in enumerate(zip(lines, sizes)):
        org = ((width - w) // 2, top + i * line_h + h + 3)
        cv2.putText(panel, text, org, font, scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return panel


def make_grid(rows: Sequence[Tuple[Sequence[str], Sequence[np.ndarray]]],
              img_size: int) -> np.ndarray:
    """Tile labelled rows of BGR cells.

    Args:
        rows: ``(label lines, cells)`` per row; each cell is a
            ``(img_size, img_size, 3)`` uint8 BGR image.
        img_size (int): Cell side.

    Returns:
        np.ndarray: ``(len(rows) * img_size,
        LABEL_MARGIN + len(cells) * img_size, 3)`` uint8 BGR.
    """
    return np.concatenate([
        np.concatenate([draw_label(label, img_size), *cells], axis=1)
        for label, cells in rows
    ])


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--img-dir', required=True, help='folder of jpg/jpeg/png/bmp images')
    add_model_args(parser, [
        'bcssl_convnext_tiny_k9', 'resnet50', 'vit_small_patch16_224',
        'swin_tiny_patch4_window7_224'
    ])
    parser.add_argument(
        '--method', choices=['gradcam', 'eigencam', 'both'], default='both')
    parser.add_argument(
        '--img-size', type=int, default=224, help='input and cell side')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument(
        '--target-class',
        type=int,
        default=None,
        help='class explained by Grad-CAM (default: the predicted class)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of random initialisation')
    parser.add_argument('--out', default='work_dirs/cam/cam_grid.png')
    return parser


def main(args: argparse.Namespace) -> np.ndarray:
    specs = parse_model_names(args.models, mmpretrain_only=True)
    checkpoints = parse_checkpoints(args.checkpoint, args.models)
    if (args.target_class is not None
            and not 0 <= args.target_class < args.num_classes):
        raise ValueError(f'--target-class {args.target_class} is not in '
                         f'[0, {args.num_classes})')
    methods = (['gradcam', 'eigencam']
               if args.method == 'both' else [args.method])
    paths = list_images(args.img_dir, args.max_images)
    rgbs, inputs = load_images(paths, args.img_size)

    rows = []
    for spec in specs:
        model = load_model(spec, args.img_size, args.num_classes,
                           checkpoints.get(spec.name), args.device, args.seed)
        layer, reshape = cam_target(spec, model)
        for method in methods:
            cams = compute_cams(model, layer, reshape, inputs, method,
                                args.target_class)  # (N, S, S)
            cells = [
                cv2.cvtColor(
                    show_cam_on_image(rgb, cam, use_rgb=True),
                    cv2.COLOR_RGB2BGR) for rgb, cam in zip(rgbs, cams)
            ]
            rows.append(((spec.name, METHOD_TITLES[method]), cells))
        del model

    grid = make_grid(rows, args.img_size)
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if not cv2.imwrite(args.out, grid):
        raise OSError(f'cannot write {args.out!r}')
    print(f'{len(rows)} rows x {len(paths)} images -> {args.out} '
          f'({grid.shape[1]}x{grid.shape[0]} px)')
    return grid


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except CheckpointLoadError as e:  # a --checkpoint that is not one
        raise SystemExit(f'error: {e}')
