"""DINO training throughput (images/s) and peak memory of BC-SSL-T.

Times full DINO training steps of a config (default: the paper's BC-SSL-T
k9 recipe, ``configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py``):
data preprocessing, the teacher forward on the 2 global crops, the student
forward on all 2 + N crops (one backbone call per resolution), the loss and
center update, backward, per-tensor clipping, the optimizer step and the
teacher's EMA update (what ``DINOHook`` does after each step). The input is
a synthetic batch of ``--batch-size`` images already cut into 2 global
(``--global-size``) and ``--num-local-crops`` local (``--local-size``) crops,
so the data pipeline is not timed (``DINOMultiCrop`` costs about 60 ms per
image on one CPU core; data loading runs in worker processes in training).
An image counts once, whatever its number of crops.

On one device SyncBN becomes BN (same per-device compute). Without
``--amp`` the step runs in fp32 through ``DINOOptimWrapper``; ``--amp``
(CUDA) uses the config's ``DINOAmpOptimWrapper``. Peak memory: see
:class:`bcssl_mm.analysis.bench.PeakMemory`.

    python tools/analysis_tools/benchmark_dino.py [--batch-size 4]
        [--num-local-crops 8] [--warmup 1] [--repeats 3]
        [--device cuda --amp --batch-size 64] [--config CONFIG]
        [--cfg-options KEY=VALUE ...]
"""
import argparse

import torch
from mmengine.config import Config, DictAction
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.analysis.bench import (PeakMemory, median_and_spread,
                                     time_train_steps)

DEFAULT_CONFIG = 'configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument(
        '--batch-size', type=int, default=4, help='images per step')
    parser.add_argument('--num-local-crops', type=int, default=8)
    parser.add_argument('--global-size', type=int, default=224)
    parser.add_argument('--local-size', type=int, default=96)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision (CUDA only)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. model.backbone.kernel_size=15')
    return parser


def check_args(args: argparse.Namespace) -> None:
    for key in ('batch_size', 'repeats', 'global_size', 'local_size'):
        if getattr(args, key) < 1:
            raise ValueError(f'--{key.replace("_", "-")} must be >= 1, got '
                             f'{getattr(args, key)}')
    if args.num_local_crops < 0 or args.warmup < 0:
        raise ValueError('--num-local-crops and --warmup must be >= 0')
    if args.amp and not args.device.startswith('cuda'):
        raise ValueError('--amp needs --device cuda (mmengine AMP on CPU is '
                         'not what training uses)')


def synthetic_views(args: argparse.Namespace) -> list:
    g = torch.Generator().manual_seed(args.seed)
    sizes = [args.global_size] * 2 + [args.local_size] * args.num_local_crops
    return [
        torch.randint(0, 256, (args.batch_size, 3, s, s),
                      generator=g).float() for s in sizes
    ]


def measure(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    ow_cfg = cfg.optim_wrapper.to_dict()
    if not args.amp:
        ow_cfg['type'] = 'DINOOptimWrapper'
        ow_cfg.pop('loss_scale', None)
    memory = PeakMemory(device)
    memory.start()
    torch.manual_seed(args.seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        model.init_weights()
        model = model.to(device).train()
        optim_wrapper = build_optim_wrapper(model, ow_cfg)
    views = [v.to(device) for v in synthetic_views(args)]
    data = dict(inputs=views, data_samples=[None] * args.batch_size)

    def step() -> dict:
        log_vars = model.train_step(data, optim_wrapper)
        model.update_teacher(0.996)  # what DINOHook does after each step
        return log_vars

    times, losses = time_train_steps(step, device, args.warmup, args.repeats,
                                     'DINO')
    median, spread = median_and_spread(times)
    return dict(
        config=args.config,
        backbone=type(model.backbone).__name__,
        kernel_size=getattr(model.backbone, 'kernel_size', None),
        device=str(device),
        threads=torch.get_num_threads(),
        amp=args.amp,
        batch_size=args.batch_size,
        crops=f'2x{args.global_size} + {args.num_local_crops}x'
        f'{args.local_size}',
        s_per_iter=median,
        img_per_s=args.batch_size / median,
        spread=spread,
        warmup=args.warmup,
        repeats=args.repeats,
        peak_mem_mib=memory.peak_bytes() / 2**20,
        memory_method=memory.method,
        student_params_m=sum(
            p.numel() for n, p in model.named_parameters()
            if not n.startswith('teacher.')) / 1e6,
        losses=losses)


def format_result(r: dict) -> str:
    return '\n'.join([
        f"{r['config']}: {r['backbone']} k{r['kernel_size']}, "
        f"{r['student_params_m']:.1f}M student parameters",
        f"torch {torch.__version__}, device {r['device']}, threads "
        f"{r['threads']}, amp {r['amp']}, batch {r['batch_size']}, crops "
        f"{r['crops']}, median of {r['repeats']} steps after {r['warmup']} "
        'warm-up',
        '',
        '| s/iter | img/s | spread | peak memory (MiB) |',
        '|---|---|---|---|',
        f"| {r['s_per_iter']:.2f} | {r['img_per_s']:.2f} | "
        f"{100 * r['spread']:.0f}% | {r['peak_mem_mib']:.0f} |",
        '',
        f"peak memory: {r['memory_method']}; losses "
        f"{', '.join(f'{x:.3f}' for x in r['losses'])}",
    ])


def main(args: argparse.Namespace) -> dict:
    check_args(args)
    result = measure(args)
    print(format_result(result))
    return result


if __name__ == '__main__':
    main(get_args_parser().parse_args())
