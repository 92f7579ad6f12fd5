"""What returning attention maps costs the MAE encoder: mmpretrain's
``MAEViT`` against the toolkit's ``AttnMAEViT`` without maps (its normal,
fused path) and with the maps of the blocks D-MAE-Lite distils.

The three run on the same weights (copied), the same images and the same
mask (the same seed before each call), in turns (round robin,
so that drift in the machine's load hits all alike); each call is a
forward and a backward of the encoder's masked features. The outputs of the
three are compared too: the latent features must be equal.

    python tools/analysis_tools/benchmark_attention_maps.py [--config \\
        configs/maelite/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py] \\
        [--batch-size 16] [--threads 2] [--repeats 10] [--layers -1]
"""
import argparse
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.models import MAEViT
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.analysis import (format_table, median_and_spread, quiet_mmengine,
                               time_round_robin)

DEFAULT_CONFIG = \
    'configs/maelite/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py'


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='a config whose model.backbone is an AttnMAEViT')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument(
        '--layers',
        type=int,
        nargs='+',
        default=[-1],
        help='blocks whose attention maps are returned (D-MAE-Lite: -1)')
    parser.add_argument('--seed', type=int, default=0)
    return parser


def build_encoders(config: str, seed: int) -> Dict[str, torch.nn.Module]:
    """The config's ``AttnMAEViT`` and an mmpretrain ``MAEViT`` with the
    same arguments and weights, in train mode."""
    cfg = Config.fromfile(config)
    backbone = dict(cfg.model.backbone)
    if backbone.get('type') != 'AttnMAEViT':
        raise ValueError(f'{config}: model.backbone.type is '
                         f'{backbone.get("type")!r}, not AttnMAEViT')
    torch.manual_seed(seed)
    # quiet: init_weights logs every parameter
    with DefaultScope.overwrite_default_scope('mmpretrain'), quiet_mmengine():
        ours = MODELS.build(backbone)
        ours.init_weights()
        theirs = MODELS.build(dict(backbone, type='MAEViT'))
    theirs.load_state_dict(ours.state_dict())
    assert type(theirs) is MAEViT
    # NOTE: mmpretrain's BaseBackbone.train returns None: not chained
    for encoder in (theirs, ours):
        encoder.train()
    return dict(mmpretrain=theirs, toolkit=ours)


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    encoders = build_encoders(args.config, args.seed)
    ours = encoders['toolkit']
    size = ours.patch_resolution[0] * ours.patch_embed.projection.stride[0]
    images = torch.randn(
        args.batch_size,
        3,
        size,
        size,
        generator=torch.Generator().manual_seed(args.seed))
    num_keep = int(ours.num_patches * (1 - ours.mask_ratio))

    # NOTE: the same seed before every call: both classes draw their mask
    # from one torch.rand(B, L), so all three see the same visible patches
    def mmpretrain_step() -> torch.Tensor:
        torch.manual_seed(args.seed)
        latent = encoders['mmpretrain'](images)[0]
        latent.sum().backward()
        return latent

    def toolkit_step(layers=()) -> torch.Tensor:
        torch.manual_seed(args.seed)
        out = ours.forward_masked(images, attn_layers=layers)
        loss = out.latent.sum()
        for logits in out.attn_logits.values():
            loss = loss + logits.sum()
        loss.backward()
        return out.latent

    steps = {
        'MAEViT (mmpretrain, fused)':
        mmpretrain_step,
        'AttnMAEViT, no maps (fused)':
        toolkit_step,
        f'AttnMAEViT, maps of blocks {args.layers}':
        lambda: toolkit_step(tuple(args.layers)),
    }
    latents = {name: fn().detach() for name, fn in steps.items()}
    reference = next(iter(latents.values()))
    diffs = {
        name: (x - reference).abs().max().item()
        for name, x in latents.items()
    }
    times = time_round_robin(steps, torch.device('cpu'), args.warmup,
                             args.repeats)
    base = median_and_spread(times['MAEViT (mmpretrain, fused)'])[0]
    rows = []
    for name, t in times.items():
        median, spread = median_and_spread(t)
        rows.append([
            name, f'{1000 * median:.1f}', f'{100 * spread:.0f}%',
            f'{median / base:.3f}', f'{diffs[name]:.1e}'
        ])
    print(f'{args.config}: batch {args.batch_size}, {size} px, '
          f'{num_keep} visible patches + class token, forward + backward, '
          f'threads {torch.get_num_threads()}, median of {args.repeats}')
    print(
        format_table(
            ['encoder', 'ms / call', 'spread', 'x MAEViT', 'latent diff'],
            rows))
    max_diff = max(diffs.values())
    return dict(times=times, max_diff=max_diff)


if __name__ == '__main__':
    main(get_args_parser().parse_args())
