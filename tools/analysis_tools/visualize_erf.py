"""Effective receptive field (ERF) of BC-SSL and baseline backbones.

The recipe of RepLKNet (https://arxiv.org/abs/2203.06717, ``erf/`` of
https://github.com/DingXiaoH/RepLKNet-pytorch), also used by SLaK:

1. contribution map of an image: the gradient, w.r.t. the input image, of the
   centre pixel ``(h // 2, w // 2)`` of the last-stage feature map (before the
   output norm), its channels passed through ReLU and summed; the gradient is
   passed through ReLU (``--grad-agg relu``, RepLKNet's choice) or ``abs``
   (magnitude) and summed over the 3 input channels;
2. the ERF is the mean contribution map over ``--num-images`` images (images
   with a NaN map are skipped);
3. high-contribution area ratio at threshold t (RepLKNet's ``analyze_erf.py``):
   the ERF is mapped to ``log10(erf + 1)`` and rescaled to a maximum of 1
   (``--no-log`` skips this and uses the raw ERF); the ratio is the area of
   the smallest centred square (side ``2 i + 1``, i >= 1) whose sum exceeds
   t times the sum of the whole map, divided by the image area, for t = 20,
   30, 50 and 99 %. Where the square would leave the image it is clipped, so
   the ratio is at most 1 (RepLKNet stops at side ``h - 1``, returning None).

The squares are centred on the image pixel ``(H // 2, W // 2)``, as in
RepLKNet, but the centre feature pixel ``h // 2`` looks at the image centre
only for some sizes: for patchify backbones (BC-SSL and Swin, stride 32;
ViT-S, stride 16) when ``h`` is odd (BC-SSL and Swin at 96, 160, 224 px),
else half a stride below and right of it; for ResNet-50 (padded strided
convs) when ``h`` is even (RepLKNet's 1024 px), else 16 px above and left. The
offset matters at small ``--img-size`` only.

Writes one PNG with a heatmap panel per model (``erf.png``), the ratios as
``erf.json`` and each raw ERF matrix as ``{model}.npy`` (the input of
RepLKNet's ``analyze_erf.py``) to ``--out-dir``, and prints a table.

    python tools/analysis_tools/visualize_erf.py --img-dir path/to/images \\
        --models bcssl_convnext_tiny_k3 bcssl_convnext_tiny_k9 resnet50 \\
        --num-images 50 \\
        --checkpoint bcssl_convnext_tiny_k9=work_dirs/bcssl/epoch_800.pth
    python tools/analysis_tools/visualize_erf.py --random 8 \\
        --models bcssl_convnext_atto_k3 bcssl_convnext_atto_k9 --img-size 160

Model names: ``bcssl_mm.analysis.zoo`` (the mmpretrain models: not
``timm::``).
"""
import argparse
import json
import os
import os.path as osp
from functools import partial
from typing import Callable, Dict, Iterator, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.figure import Figure
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from bcssl_mm.analysis import format_table, zoo
from bcssl_mm.analysis.zoo import add_model_args
from bcssl_mm.utils import CheckpointLoadError

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
# figure: one PANEL_PX x (PANEL_PX + TITLE_PX) panel per model, at DPI
PANEL_PX, TITLE_PX, DPI = 300, 50, 100


def feature_layer(spec: zoo.ModelSpec,
                  model: nn.Module) -> Tuple[nn.Module, Callable]:
    """The module whose output is the last-stage feature map of ``model``.

    Args:
        spec (ModelSpec): The model.
        model (nn.Module): Its classifier.

    Returns:
        tuple: The module and a function mapping its output to
        ``(N, C, H, W)``.
    """
    backbone = model.backbone
    if spec.family in ('bcssl', 'convnext'):
        return backbone.stages[-1], nn.Identity()
    if spec.family == 'resnet':
        return backbone.layer4, nn.Identity()
    if spec.family == 'vit':
        return backbone.layers[-1], partial(
            zoo.tokens_to_map, num_extra_tokens=backbone.num_extra_tokens)
    if spec.family == 'swin':
        # SwinBlockSequence returns (tokens (N, H * W, C), (H, W))
        return backbone.stages[-1], lambda out: zoo.tokens_to_map(
            out[0], hw_shape=out[1])
    raise ValueError(f'model {spec.name!r}: unknown family {spec.family!r}')


def contribution_maps(model: nn.Module,
                      layer: nn.Module,
                      to_map: Callable,
                      images: torch.Tensor,
                      grad_agg: str = 'relu') -> np.ndarray:
    """Per-image contribution maps ``(N, H, W)`` of the centre feature pixel.

    The model must be in eval mode, so that the images of the batch do not
    interact (BatchNorm statistics) and each map equals RepLKNet's batch-1 map.

    Args:
        model (nn.Module): Classifier with a ``backbone``.
        layer (nn.Module): Module giving the last-stage features.
        to_map (callable): Maps ``layer``'s output to ``(N, C, h, w)``.
        images (torch.Tensor): Normalised images ``(N, 3, H, W)``.
        grad_agg (str): 'relu' (RepLKNet) or 'abs' applied to the input
            gradient before summing its channels.
    """
    captured = []
    handle = layer.register_forward_hook(
        lambda module, inputs, output: captured.append(output))
    images = images.detach().clone().requires_grad_(True)
    try:
        model.backbone(images)
    finally:
        handle.remove()
    feats = to_map(captured[0])  # (N, C, h, w)
    h, w = feats.shape[-2:]
    centre = F.relu(feats[:, :, h // 2, w // 2]).sum()
    grad, = torch.autograd.grad(centre, images)  # (N, 3, H, W)
    grad = F.relu(grad) if grad_agg == 'relu' else grad.abs()
    return grad.sum(1).cpu().numpy()  # (N, H, W)


def compute_erf(model: nn.Module,
                layer: nn.Module,
                to_map: Callable,
                batches: Iterator[torch.Tensor],
                grad_agg: str = 'relu') -> Tuple[np.ndarray, int]:
    """Mean contribution map over all images of ``batches``, NaN maps skipped.

    Returns:
        tuple: The ERF ``(H, W)`` float64 and the number of images averaged.
    """
    total, count = 0., 0
    for batch in batches:
        for grad_map in contribution_maps(model, layer, to_map, batch,
                                          grad_agg):
            if np.isnan(grad_map).any():
                print('got NaN, skipping an image')
                continue
            total = total + grad_map.astype(np.float64)
            count += 1
    if count == 0:
        raise RuntimeError('every contribution map was NaN')
    return total / count, count


def normalize_erf(erf: np.ndarray, log_scale: bool = True) -> np.ndarray:
    """RepLKNet's ``log10(erf + 1)`` rescaled to a maximum of 1."""
    data = np.log10(erf + 1) if log_scale else erf
    peak = data.max()
    if not peak > 0:
        raise ValueError('the ERF is 0 everywhere')
    return data / peak


def high_contribution_area(data: np.ndarray,
                           thresh: float) -> Tuple[int, float]:
    """Smallest centred square holding more than ``thresh`` of ``data``'s sum.

    RepLKNet's ``get_rectangle``: squares of side ``2 i + 1`` (i >= 1) around
    ``(h // 2, w // 2)``; here clipped to the map once larger than it.

    Returns:
        tuple: The side of the square and its (clipped) area / map area.
    """
    h, w = data.shape
    total = data.sum()
    ch, cw = h // 2, w // 2
    for i in range(1, max(h, w)):
        square = data[max(ch - i, 0):ch + i + 1, max(cw - i, 0):cw + i + 1]
        if square.sum() / total > thresh:
            return 2 * i + 1, square.size / (h * w)
    return max(h, w), 1.0  # thresh >= 1


def analyze_erf(erf: np.ndarray, log_scale: bool = True) -> dict:
    """Area ratios and square sides for each of ``THRESHOLDS``."""
    data = normalize_erf(erf, log_scale)
    result = dict(area_ratio={}, side_length={})
    for thresh in THRESHOLDS:
        side, ratio = high_contribution_area(data, thresh)
        key = f'{round(thresh * 100)}'
        result['area_ratio'][key] = ratio
        result['side_length'][key] = side
    return result


def figure_size_px(num_models: int) -> Tuple[int, int]:
    """``(height, width)`` in pixels of the ERF figure."""
    return PANEL_PX + TITLE_PX, PANEL_PX * num_models


def plot_erfs(erfs: Dict[str, np.ndarray],
              results: Dict[str, dict],
              path: str,
              log_scale: bool = True) -> None:
    """Save one heatmap panel per model (RepLKNet's colours)."""
    height, width = figure_size_px(len(erfs))
    # Figure without pyplot: Agg canvas, no global state
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for i, (name, erf) in enumerate(erfs.items()):
        ax = fig.add_axes([
            i / len(erfs) + 0.01 / len(erfs), 0.01, 0.98 / len(erfs),
            PANEL_PX / height - 0.02
        ])
        # vmin=-1 reproduces RepLKNet's seaborn heatmap(center=0) on [0, 1]
        # data: 0 is light yellow, 1 dark green
        ax.imshow(
            normalize_erf(erf, log_scale), cmap='RdYlGn', vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ratio = results[name]['area_ratio']['50']
        fig.text(
            (i + 0.5) / len(erfs),
            1 - 0.5 * TITLE_PX / height,
            f'{name}\nt=50%: {ratio:.3f}',
            ha='center',
            va='center',
            fontsize=10)
    fig.savefig(path, dpi=DPI)


def results_table(results: Dict[str, dict]) -> str:
    """Area ratio (square side) per model and threshold."""
    keys = [f'{round(t * 100)}' for t in THRESHOLDS]
    rows = [[name] + [
        f"{res['area_ratio'][k]:.4f} ({res['side_length'][k]})" for k in keys
    ] for name, res in results.items()]
    return format_table(['model'] + [f't={k}%' for k in keys], rows)


def image_batches(args: argparse.Namespace) -> Iterator[torch.Tensor]:
    """Normalised images ``(B, 3, S, S)`` from ``--img-dir`` or noise."""
    if args.random is not None:
        generator = torch.Generator().manual_seed(args.seed)
        mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
        for start in range(0, args.random, args.batch_size):
            size = min(args.batch_size, args.random - start)
            noise = torch.rand(
                size, 3, args.img_size, args.img_size, generator=generator)
            yield (noise - mean) / std
        return
    paths = zoo.list_images(args.img_dir, args.num_images)
    for start in range(0, len(paths), args.batch_size):
        yield zoo.load_images(paths[start:start + args.batch_size],
                              args.img_size)[1]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--img-dir', help='folder of jpg/jpeg/png/bmp images')
    source.add_argument(
        '--random',
        type=int,
        metavar='N',
        help='use N uniform-noise images instead of --img-dir')
    add_model_args(parser,
                   ['bcssl_convnext_tiny_k3', 'bcssl_convnext_tiny_k9'])
    parser.add_argument(
        '--img-size',
        type=int,
        default=224,
        help='input side (RepLKNet uses 1024; 224 keeps CPU runs short)')
    parser.add_argument(
        '--num-images',
        type=int,
        default=50,
        help='images read from --img-dir (RepLKNet: 50)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument(
        '--grad-agg',
        choices=['relu', 'abs'],
        default='relu',
        help='applied to the input gradient (RepLKNet: relu)')
    parser.add_argument(
        '--no-log',
        action='store_true',
        help='area ratios of the raw ERF instead of log10(ERF + 1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of random initialisation and of --random noise')
    parser.add_argument('--out-dir', default='work_dirs/erf')
    return parser


def main(args: argparse.Namespace) -> Dict[str, dict]:
    specs = zoo.parse_model_names(args.models, mmpretrain_only=True)
    checkpoints = zoo.parse_checkpoints(args.checkpoint, args.models)
    log_scale = not args.no_log
    os.makedirs(args.out_dir, exist_ok=True)

    erfs, results = {}, {}
    for spec in specs:
        model = zoo.load_model(spec, args.img_size, 1000,
                               checkpoints.get(spec.name), args.device,
                               args.seed)
        layer, to_map = feature_layer(spec, model)
        batches = (b.to(args.device) for b in image_batches(args))
        erf, count = compute_erf(model, layer, to_map, batches, args.grad_agg)
        np.save(osp.join(args.out_dir, f'{spec.name}.npy'), erf)
        erfs[spec.name] = erf
        results[spec.name] = dict(
            analyze_erf(erf, log_scale),
            num_images=count,
            img_size=args.img_size)
        del model

    plot_erfs(erfs, results, osp.join(args.out_dir, 'erf.png'), log_scale)
    with open(osp.join(args.out_dir, 'erf.json'), 'w') as f:
        json.dump(results, f, indent=2)
    print('High-contribution area ratio (square side in pixels) of '
          f"{'log10(ERF + 1)' if log_scale else 'the raw ERF'}, "
          f'{args.img_size}x{args.img_size} inputs:')
    print(results_table(results))
    print(f'-> {args.out_dir}/erf.png, erf.json, <model>.npy')
    return results


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except CheckpointLoadError as e:  # a --checkpoint that is not one
        raise SystemExit(f'error: {e}')
