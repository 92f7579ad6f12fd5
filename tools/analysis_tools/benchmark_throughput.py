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
        [--device cuda] [--models bcssl_convnext_tiny_k9
        timm::swin_tiny_patch4_window7_224 ...]

Model names: ``bcssl_mm.analysis.zoo`` (``timm::`` names are built by timm,
the others by mmpretrain).
"""
import argparse
import json
from typing import Callable, Dict, List

import torch
import torch.nn as nn

from bcssl_mm.analysis import (build_model, count_macs, format_table,
                               median_and_spread, parse_model_name,
                               time_repeats, time_round_robin)
from bcssl_mm.analysis.zoo import NAME_HELP

SWIN_T = ('swin_tiny_patch4_window7_224', 'timm::swin_tiny_patch4_window7_224')
CONVNEXT_T = 'convnext_tiny'
DEFAULT_MODELS = [
    'bcssl_convnext_tiny_k3', 'bcssl_convnext_tiny_k3_deploy',
    'bcssl_convnext_tiny_k7', 'bcssl_convnext_tiny_k7_deploy',
    'bcssl_convnext_tiny_k9', 'bcssl_convnext_tiny_k9_deploy',
    'bcssl_convnext_tiny_k15_deploy', 'bcssl_convnext_small_k9_deploy',
    'convnext_tiny', 'timm::convnext_tiny', 'convnext_small',
    'swin_tiny_patch4_window7_224', 'timm::swin_tiny_patch4_window7_224',
    'timm::swin_small_patch4_window7_224', 'timm::vit_small_patch16_224',
    'timm::resnet50'
]


def build(name: str, img_size: int) -> nn.Module:
    """``name`` of the analysis vocabulary, random weights, eval mode."""
    # NOTE: mmpretrain's Swin runs with pad_small_map=True at every size (at
    # 224 px its 7x7 last stage keeps the shifted windows and their mask);
    # the README's figures were measured so
    return build_model(name, img_size, swin_pad_small_map=True)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=DEFAULT_MODELS,
        help=f'models to time: {NAME_HELP}')
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


def time_models(models: Dict[str, nn.Module], x: torch.Tensor, warmup: int,
                repeats: int, amp: bool) -> Dict[str, List[float]]:
    """Seconds per batch of each model in each timed round (round-robin)."""
    with torch.inference_mode(), torch.autocast(
            x.device.type, dtype=torch.float16, enabled=amp):
        return time_round_robin(
            {
                name: (lambda model=model: model(x))
                for name, model in models.items()
            }, x.device, warmup, repeats)


def _median_rate(fn: Callable[[], object], flop: float, device: torch.device,
                 repeats: int) -> float:
    times, _ = time_repeats(fn, device, 2, repeats)
    return flop / median_and_spread(times)[0]


def matmul_flops(device: torch.device,
                 n: int = 2048,
                 repeats: int = 5) -> Dict[str, float]:
    """Measured fp32 matmul FLOP/s (2 n^3 per product), median of repeats.

    On CPU torch.mm runs MKL's sgemm, whose fp32 rate can be well under the
    machine's (e.g. on AMD CPUs); oneDNN's matmul, which convolutions and
    BC-SSL's deploy form use, is measured as well.
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    rates = {
        'torch.mm': _median_rate(lambda: torch.mm(a, b), 2 * n**3, device,
                                 repeats)
    }
    if device.type == 'cpu' and hasattr(torch.ops.mkldnn, '_linear_pointwise'):
        with torch.inference_mode():
            rates['onednn'] = _median_rate(
                lambda: torch.ops.mkldnn._linear_pointwise(
                    a, b, None, 'none', [], ''), 2 * n**3, device, repeats)
    return rates


def is_bcssl_t_k9(name: str) -> bool:
    """BC-SSL-T k9 (with BN, either form): the model whose fraction of the
    matmul rate is reported."""
    spec = parse_model_name(name)
    return (spec.family, spec.arch, spec.kernel_size,
            spec.with_bn) == ('bcssl', 'tiny', 9, True)


def run(args: argparse.Namespace) -> Dict[str, dict]:
    for name in args.models:
        parse_model_name(name)  # a clear error before anything is built
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    memory_format = (
        torch.channels_last if args.channels_last else torch.contiguous_format)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size).to(
        device, memory_format=memory_format)
    models = {}
    for name in args.models:
        torch.manual_seed(0)
        models[name] = build(name, args.img_size).to(
            device, memory_format=memory_format)
    times = time_models(models, x, args.warmup, args.repeats, args.amp)
    results: Dict[str, dict] = {}
    for name, model in models.items():
        median, spread = median_and_spread(times[name])
        results[name] = dict(
            img_per_s=args.batch_size / median,
            best_img_per_s=args.batch_size / min(times[name]),
            spread=spread,
            params_m=sum(p.numel() for p in model.parameters()) / 1e6,
            seconds=times[name])
    return results


def results_table(results: Dict[str, dict]) -> str:
    """Throughput per model and its ratios to Swin-T and ConvNeXt-T."""
    swin = [results[m]['img_per_s'] for m in SWIN_T if m in results]
    swin_best = max(swin) if swin else None
    convnext = results.get(CONVNEXT_T, {}).get('img_per_s')
    rows = [(name, f'{r["params_m"]:.1f}', f'{r["img_per_s"]:.1f}',
             f'{r["best_img_per_s"]:.1f}', f'{100 * r["spread"]:.0f}%',
             f'{r["img_per_s"] / swin_best:.2f}' if swin_best else None,
             f'{r["img_per_s"] / convnext:.2f}' if convnext else None)
            for name, r in results.items()]
    return format_table(('model', 'params (M)', 'img/s', 'best', 'spread',
                         'x Swin-T', 'x ConvNeXt-T'), rows)


def main(args: argparse.Namespace) -> Dict[str, dict]:
    device = torch.device(args.device)
    print(f'torch {torch.__version__}, device {device}, threads '
          f'{torch.get_num_threads()}, batch {args.batch_size}, '
          f'{args.img_size}px, channels_last {args.channels_last}, amp '
          f'{args.amp}, median of {args.repeats} rounds after {args.warmup} '
          'warm-up batches')
    results = run(args)
    print()
    print(results_table(results))

    rates = matmul_flops(device)
    peak = max(rates.values())
    print('\nmeasured fp32 matmul: ' + ', '.join(f'{k} {v / 1e9:.1f}'
                                                 for k, v in rates.items()) +
          ' GFLOP/s')
    for name in results:
        if is_bcssl_t_k9(name):
            macs = count_macs(build(name, args.img_size), args.img_size)
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
