"""Inference throughput (images/s) of BC-SSL against ConvNeXt, Swin, ViT, RN50.

The paper's Table 3 column: every model is built in this one process and run
at the same batch and resolution; after a warm-up the models are timed in
turn, one batch each per round, so that drift in the machine's load hits all
of them alike. The median over rounds is reported (with the best round and the
spread, (max - min) / median) and its ratios to Swin-T (the faster of
mmpretrain's and timm's) and to ConvNeXt-T (mmpretrain's). BC-SSL is measured
in training form (BN after the depthwise conv) and in deploy form
(``switch_to_deploy()``). The machine's fp32 matmul rate is measured too (the
faster of torch.mm and, on CPU, oneDNN's matmul), so that the fraction of it
that BC-SSL-T reaches can be reported.

    python tools/analysis_tools/benchmark_throughput.py [--batch-size 32]
        [--img-size 224] [--warmup 3] [--repeats 10] [--channels-last]
        [--threads N] [--amp]
        [--device cuda] [--models bcssl-t-k9 swin-t-timm ...]
"""
import argparse
import json
import statistics
import time
from typing import Callable, Dict, List

import timm
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmpretrain.registry import MODELS

from bcssl_mm.analysis import ModelSpec, build_classifier

SWIN_T = ('swin-t-mmpretrain', 'swin-t-timm')
CONVNEXT_T = 'convnext-t'
BCSSL_KERNELS = (3, 5, 7, 9, 15)


def _classifier(backbone: dict, in_channels: int, neck: bool = True):
    return MODELS.build(
        dict(
            _scope_='mmpretrain',
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling') if neck else None,
            head=dict(
                type='LinearClsHead', num_classes=1000,
                in_channels=in_channels)))


def _bcssl(arch: str, kernel_size: int, deploy: bool) -> Callable[[], nn.Module]:

    def build() -> nn.Module:
        model = build_classifier(
            ModelSpec(f'bcssl-{arch}-k{kernel_size}', 'bcssl', arch,
                      kernel_size))
        if deploy:
            model.eval()
            model.backbone.switch_to_deploy()
        return model

    return build


def model_zoo(img_size: int = 224) -> Dict[str, Callable[[], nn.Module]]:
    """Name -> builder of every model of the benchmark (random weights)."""
    zoo: Dict[str, Callable[[], nn.Module]] = {}
    for arch, size in (('tiny', 't'), ('small', 's')):
        for k in BCSSL_KERNELS:
            zoo[f'bcssl-{size}-k{k}'] = _bcssl(arch, k, deploy=False)
            zoo[f'bcssl-{size}-k{k}-deploy'] = _bcssl(arch, k, deploy=True)
    zoo['convnext-t'] = lambda: _classifier(
        dict(type='ConvNeXt', arch='tiny'), 768, neck=False)
    zoo['convnext-s'] = lambda: _classifier(
        dict(type='ConvNeXt', arch='small'), 768, neck=False)
    zoo['convnext-t-timm'] = lambda: timm.create_model('convnext_tiny')
    zoo['swin-t-mmpretrain'] = lambda: _classifier(
        dict(
            type='SwinTransformer', arch='tiny', img_size=img_size,
            pad_small_map=True), 768)
    zoo['swin-s-mmpretrain'] = lambda: _classifier(
        dict(
            type='SwinTransformer', arch='small', img_size=img_size,
            pad_small_map=True),
        768)
    zoo['swin-t-timm'] = lambda: timm.create_model(
        'swin_tiny_patch4_window7_224', img_size=img_size)
    zoo['swin-s-timm'] = lambda: timm.create_model(
        'swin_small_patch4_window7_224', img_size=img_size)
    zoo['vit-s-timm'] = lambda: timm.create_model(
        'vit_small_patch16_224', img_size=img_size)
    zoo['resnet50-timm'] = lambda: timm.create_model('resnet50')
    return zoo


DEFAULT_MODELS = [
    'bcssl-t-k3', 'bcssl-t-k3-deploy', 'bcssl-t-k7', 'bcssl-t-k7-deploy',
    'bcssl-t-k9', 'bcssl-t-k9-deploy', 'bcssl-t-k15-deploy',
    'bcssl-s-k9-deploy', 'convnext-t', 'convnext-t-timm', 'convnext-s',
    'swin-t-mmpretrain', 'swin-t-timm', 'swin-s-timm', 'vit-s-timm',
    'resnet50-timm'
]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=DEFAULT_MODELS,
        help=f'models to time, from: {", ".join(model_zoo())}')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--warmup', type=int, default=3, help='untimed batches per model')
    parser.add_argument(
        '--repeats',
        type=int,
        default=10,
        help='timed rounds (one batch per model each)')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='inputs and weights in torch.channels_last')
    parser.add_argument(
        '--threads', type=int, help='torch.set_num_threads (CPU)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--amp', action='store_true', help='fp16 autocast (GPU)')
    parser.add_argument('--json', help='also write the results here')
    return parser


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_models(models: Dict[str, nn.Module], x: torch.Tensor, warmup: int,
                repeats: int, amp: bool) -> Dict[str, List[float]]:
    """Seconds per batch of each model in each timed round (round-robin)."""
    times: Dict[str, List[float]] = {name: [] for name in models}
    with torch.inference_mode(), torch.autocast(
            x.device.type, dtype=torch.float16, enabled=amp):
        for model in models.values():
            for _ in range(warmup):
                model(x)
        for _ in range(repeats):
            for name, model in models.items():
                _sync(x.device)
                start = time.perf_counter()
                model(x)
                _sync(x.device)
                times[name].append(time.perf_counter() - start)
    return times


def _median_rate(fn: Callable[[], object], flop: float, device: torch.device,
                 repeats: int) -> float:
    times = []
    for i in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return flop / statistics.median(times)


def matmul_flops(device: torch.device, n: int = 2048,
                 repeats: int = 5) -> Dict[str, float]:
    """Measured fp32 matmul FLOP/s (2 n^3 per product), median of repeats.

    On CPU torch.mm runs MKL's sgemm, whose fp32 rate can be well under the
    machine's (e.g. on AMD CPUs); oneDNN's matmul, which convolutions and
    BC-SSL's deploy form use, is measured as well.
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    rates = {'torch.mm': _median_rate(lambda: torch.mm(a, b), 2 * n**3,
                                      device, repeats)}
    if device.type == 'cpu' and hasattr(torch.ops.mkldnn,
                                        '_linear_pointwise'):
        with torch.inference_mode():
            rates['onednn'] = _median_rate(
                lambda: torch.ops.mkldnn._linear_pointwise(
                    a, b, None, 'none', [], ''), 2 * n**3, device, repeats)
    return rates


def model_flops(model: nn.Module, img_size: int) -> float:
    """Multiply-adds of one image (mmengine's FlopAnalyzer)."""
    analyzer = FlopAnalyzer(model, torch.randn(1, 3, img_size, img_size))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return float(analyzer.total())


def run(args: argparse.Namespace) -> Dict[str, dict]:
    zoo = model_zoo(args.img_size)
    unknown = [m for m in args.models if m not in zoo]
    if unknown:
        raise SystemExit(f'unknown --models {unknown}; known: {list(zoo)}')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    memory_format = (
        torch.channels_last if args.channels_last else torch.contiguous_format)
    x = torch.randn(args.batch_size, 3, args.img_size,
                    args.img_size).to(device, memory_format=memory_format)
    models = {}
    for name in args.models:
        torch.manual_seed(0)
        models[name] = zoo[name]().eval().to(
            device, memory_format=memory_format)
    times = time_models(models, x, args.warmup, args.repeats, args.amp)
    results: Dict[str, dict] = {}
    for name, model in models.items():
        median = statistics.median(times[name])
        results[name] = dict(
            img_per_s=args.batch_size / median,
            best_img_per_s=args.batch_size / min(times[name]),
            spread=(max(times[name]) - min(times[name])) / median,
            params_m=sum(p.numel() for p in model.parameters()) / 1e6,
            seconds=times[name])
    return results


def format_table(results: Dict[str, dict]) -> str:
    swin = [results[m]['img_per_s'] for m in SWIN_T if m in results]
    swin_best = max(swin) if swin else None
    convnext = results.get(CONVNEXT_T, {}).get('img_per_s')
    header = ('model', 'params (M)', 'img/s', 'best', 'spread', 'x Swin-T',
              'x ConvNeXt-T')
    rows = [header]
    for name, r in results.items():
        rows.append(
            (name, f'{r["params_m"]:.1f}', f'{r["img_per_s"]:.1f}',
             f'{r["best_img_per_s"]:.1f}', f'{100 * r["spread"]:.0f}%',
             f'{r["img_per_s"] / swin_best:.2f}' if swin_best else '-',
             f'{r["img_per_s"] / convnext:.2f}' if convnext else '-'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [' | '.join(c.ljust(w) for c, w in zip(row, widths))
             for row in rows]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    return '\n'.join(lines)


def main(args: argparse.Namespace) -> Dict[str, dict]:
    device = torch.device(args.device)
    print(f'torch {torch.__version__}, device {device}, threads '
          f'{torch.get_num_threads()}, batch {args.batch_size}, '
          f'{args.img_size}px, channels_last {args.channels_last}, amp '
          f'{args.amp}, median of {args.repeats} rounds after {args.warmup} '
          'warm-up batches')
    results = run(args)
    print()
    print(format_table(results))

    rates = matmul_flops(device)
    peak = max(rates.values())
    print('\nmeasured fp32 matmul: ' + ', '.join(
        f'{k} {v / 1e9:.1f}' for k, v in rates.items()) + ' GFLOP/s')
    for name in results:
        if name.startswith('bcssl-t-k9'):
            macs = model_flops(
                model_zoo(args.img_size)[name]().eval(), args.img_size)
            achieved = results[name]['img_per_s'] * 2 * macs
            results[name]['gflop_per_s'] = achieved / 1e9
            results[name]['fraction_of_matmul'] = achieved / peak
            print(f'{name}: {macs / 1e9:.2f} GMACs/img -> '
                  f'{achieved / 1e9:.1f} GFLOP/s = '
                  f'{100 * achieved / peak:.0f}% of the best matmul rate')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    args=vars(args),
                    matmul_flop_per_s=peak,
                    matmul_flop_per_s_by_library=rates,
                    results=results),
                f,
                indent=2)
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
