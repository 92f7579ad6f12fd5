"""Seconds per Mask R-CNN training iteration and peak memory of BC-SSL-T.

Times full training steps (``model.train_step``: data preprocessing,
forward, losses, backward, optimizer step) of the paper's Mask R-CNN 3x
recipe with the BC-SSL-T (k9) backbone,
``configs/dino/benchmarks/mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py``,
against mmdet's stock ConvNeXt-T config
(``mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py``),
on the same synthetic batch: ``--batch-size`` random images of
``--img-size`` x ``--img-size`` with ``--num-objects`` random boxes each,
elliptical masks inside them and random labels (no COCO needed; the same
seed gives both models the same batch). Each model is built from its config
through mmdet's registry (random init: the backbone's ``init_cfg`` is
dropped, so no checkpoint is loaded), with the optimizer of its
``optim_wrapper`` (AdamW, layer-wise lr decay constructor), and timed after
``--warmup`` steps; the median over ``--repeats`` steps is reported.

Deviations from a training run, each forced by running on one device:

* SyncBN (the BC-SSL backbone's BN) becomes BN (``revert_sync_batchnorm``):
  the same per-device compute, without the cross-GPU reduction.
* The configs' ``AmpOptimWrapper`` only runs on GPU: without ``--amp`` both
  models use a plain fp32 ``OptimWrapper`` with the same optimizer,
  constructor and ``paramwise_cfg``; ``--amp`` (CUDA only) keeps AMP.

Peak memory: each model runs in a fresh subprocess, so the peaks are its own,
measured from just before the model is built (see
:class:`bcssl_mm.analysis.bench.PeakMemory`: ``max_memory_allocated`` on
CUDA, the resident-set high-water mark on CPU, an upper bound).

    python tools/analysis_tools/benchmark_maskrcnn_iter.py [--batch-size 2]
        [--img-size 512] [--warmup 1] [--repeats 3] [--device cuda --amp]
        [--models bcssl_convnext_tiny_k9 convnext_tiny
                  bcssl_convnext_tiny_k7_nobn | CONFIG.py ...]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import copy
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from bcssl_mm.analysis import (PeakMemory, format_table, median_and_spread,
                               parse_model_name, quiet_mmengine,
                               time_train_steps)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# backbone names of bcssl_mm.analysis.zoo -> their Mask R-CNN 3x config
MODEL_CONFIGS = {
    # the paper's Table 4 model
    'bcssl_convnext_tiny_k9':
    osp.join(ROOT, 'configs', 'dino', 'benchmarks',
             'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'),
    # mmdet's supervised ConvNeXt-T recipe, mmpretrain's ConvNeXt backbone
    'convnext_tiny':
    'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    # the same ConvNeXt-T through BCSSLConvNeXt (k7, no BN): separates the
    # implementation from the architecture
    'bcssl_convnext_tiny_k7_nobn':
    osp.join(ROOT, 'configs', 'dino', 'benchmarks',
             'mask-rcnn_convnext-t-k7-in1k-pre_fpn_amp-ms-crop-3x_coco.py'),
}
DEFAULT_MODELS = ['bcssl_convnext_tiny_k9', 'convnext_tiny']
BASELINE = 'convnext_tiny'
RESULT_PREFIX = 'BENCHMARK_RESULT '


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=DEFAULT_MODELS,
        help=f'backbone names with a config ({", ".join(MODEL_CONFIGS)}) '
        'or mmdet config files')
    # docs/recipes.md §6: ConvNeXt-T Mask R-CNN, 2 x 512 px, ~12 s/step on
    # 2 cores
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument(
        '--num-objects', type=int, default=5, help='boxes per image')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--repeats', type=int, default=3, help='timed steps per model')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='AmpOptimWrapper (fp16 autocast), as the configs; CUDA only')
    parser.add_argument(
        '--threads', type=int, help='torch.set_num_threads (CPU)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides applied to every model\'s config, e.g. '
        'model.train_cfg.rcnn.sampler.num=256')
    parser.add_argument('--json', help='also write the results here')
    # internal: measure one model in this process and print its result
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    return parser


def check_args(args: argparse.Namespace) -> None:
    for key in ('batch_size', 'img_size', 'repeats'):
        if getattr(args, key) < 1:
            raise ValueError(f'--{key.replace("_", "-")} must be >= 1, got '
                             f'{getattr(args, key)}')
    for key in ('num_objects', 'warmup'):
        if getattr(args, key) < 0:
            raise ValueError(f'--{key.replace("_", "-")} must be >= 0, got '
                             f'{getattr(args, key)}')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {args.device}: CUDA is not available')
    if args.amp and device.type != 'cuda':
        raise ValueError(f'--amp needs a CUDA --device (mmengine\'s '
                         f'AmpOptimWrapper is GPU-only), got {args.device!r}')
    for name in args.models:
        if name in MODEL_CONFIGS or osp.isfile(name):
            continue
        if name.endswith('.py'):
            raise ValueError(f'--models: config file {name!r} does not exist')
        parse_model_name(name)  # names the valid names of the vocabulary
        raise ValueError(f'--models: {name!r} has no Mask R-CNN config here; '
                         f'use one of {list(MODEL_CONFIGS)} or a config file')


def load_config(name: str, cfg_options: Optional[dict] = None) -> Config:
    """Config of ``name`` (see ``MODEL_CONFIGS``) or of a config file."""
    path = MODEL_CONFIGS.get(name, name)
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` (random init, no checkpoint) with BN for SyncBN."""
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    # scoped, so that callers in the same process keep their default scope
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmdet')):
        model = MODELS.build(model_cfg)
        with quiet_mmengine():
            model.init_weights()
    return revert_sync_batchnorm(model)


def build_optimizer(model: nn.Module, cfg: Config, amp: bool) -> OptimWrapper:
    """The config's optimizer, constructor and paramwise_cfg; fp32 unless
    ``amp``."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        optim_cfg['type'] = 'AmpOptimWrapper'
    else:
        optim_cfg['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_cfg.pop(key, None)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmdet')), quiet_mmengine():
        return build_optim_wrapper(model, optim_cfg)


def synthetic_batch(batch_size: int,
                    img_size: int,
                    num_objects: int,
                    num_classes: int,
                    seed: int = 0) -> dict:
    """A packed mmdet batch as ``PackDetInputs`` + the dataloader give it.

    Returns:
        dict: ``inputs``, ``batch_size`` uint8 BGR images ``(3, S, S)``, and
        ``data_samples`` with ``gt_instances`` (boxes at least S / 10 wide,
        the ellipse inscribed in each box as its mask, random labels).
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    s = img_size
    ys, xs = np.mgrid[:s, :s] + 0.5  # pixel centres, (S, S) each
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(
            torch.from_numpy(rng.integers(0, 256, (3, s, s), dtype=np.uint8)))
        wh = rng.uniform(0.1, 0.5, (num_objects, 2)) * s
        x1y1 = rng.uniform(0, 1, (num_objects, 2)) * (s - wh)
        boxes = np.concatenate([x1y1, x1y1 + wh], axis=1)  # (n, 4) x1y1x2y2
        centre, half = x1y1 + wh / 2, wh / 2  # (n, 2) each
        masks = (
            ((xs[None] - centre[:, 0, None, None]) / half[:, 0, None, None])**2
            +
            ((ys[None] - centre[:, 1, None, None]) / half[:, 1, None, None])**2
            <= 1).astype(np.uint8)
        sample = DetDataSample(
            metainfo=dict(
                img_id=i,
                img_path=f'synthetic_{i}.jpg',
                ori_shape=(s, s),
                img_shape=(s, s),
                scale_factor=(1.0, 1.0),
                flip=False,
                flip_direction=None))
        sample.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.from_numpy(boxes).float()),
            labels=torch.from_numpy(rng.integers(0, num_classes,
                                                 num_objects)).long(),
            masks=BitmapMasks(masks, s, s))  # (n, S, S)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def describe_backbone(backbone: nn.Module) -> dict:
    """Class, depthwise kernel sizes and BatchNorm count of ``backbone``."""
    dw_kernels = sorted({
        m.kernel_size[0]
        for m in backbone.modules() if isinstance(m, nn.Conv2d)
        and m.groups > 1 and m.groups == m.in_channels == m.out_channels
    })
    return dict(
        type=type(backbone).__name__,
        dw_kernels=dw_kernels,
        num_dw_convs=sum(
            isinstance(m, nn.Conv2d) and m.groups > 1
            and m.groups == m.in_channels for m in backbone.modules()),
        num_bn=sum(isinstance(m, _BatchNorm) for m in backbone.modules()))


def measure(args: argparse.Namespace, name: str) -> dict:
    """Build ``name`` and time its training steps in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = load_config(name, args.cfg_options)
    memory = PeakMemory(device)
    memory.start()
    torch.manual_seed(args.seed)
    model = build_model(cfg).to(device).train()
    optim_wrapper = build_optimizer(model, cfg, args.amp)
    batch = synthetic_batch(args.batch_size, args.img_size, args.num_objects,
                            cfg.model.roi_head.bbox_head.num_classes,
                            args.seed)
    # the data preprocessor pads the masks in place: a fresh copy each step
    # (copying is inside the timed region but negligible next to the step)
    times, losses = time_train_steps(
        lambda: model.train_step(copy.deepcopy(batch), optim_wrapper), device,
        args.warmup, args.repeats, name)
    median, spread = median_and_spread(times)
    return dict(
        name=name,
        config=MODEL_CONFIGS.get(name, name),
        s_per_iter=median,
        img_per_s=args.batch_size / median,
        spread=spread,
        times=times,
        peak_mem_mib=memory.peak_bytes() / 2**20,
        memory_method=memory.method,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        backbone=describe_backbone(model.backbone),
        losses=losses)


def run_isolated(args: argparse.Namespace, name: str) -> dict:
    """``measure`` in a fresh interpreter, so that the peak memory is its
    own."""
    worker_args = dict(vars(args), worker=name, models=[name], json=None)
    proc = subprocess.run([
        sys.executable,
        osp.abspath(__file__), '--worker',
        json.dumps(worker_args)
    ],
                          capture_output=True,
                          text=True,
                          cwd=ROOT,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    lines = [
        line for line in proc.stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'{name} failed ({proc.returncode}):\n'
                           f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def _backbone_str(desc: dict) -> str:
    kernels = '/'.join(f'{k}x{k}' for k in desc['dw_kernels'])
    return f"{desc['type']} dw {kernels}, {desc['num_bn']} BN"


def results_table(results: Dict[str, dict]) -> str:
    """Step time, memory and their ratios to ``BASELINE`` (else the first)."""
    base = BASELINE if BASELINE in results else next(iter(results))
    ref = results[base]
    rows = [(name, _backbone_str(r['backbone']), f"{r['params_m']:.1f}",
             f"{r['s_per_iter']:.3f}", f"{100 * r['spread']:.0f}%",
             f"{r['img_per_s']:.2f}", f"{r['peak_mem_mib']:.0f}",
             f"{r['s_per_iter'] / ref['s_per_iter']:.2f}",
             f"{r['peak_mem_mib'] / ref['peak_mem_mib']:.2f}")
            for name, r in results.items()]
    return format_table(
        ('model', 'backbone', 'params (M)', 's/iter', 'spread', 'img/s',
         'peak mem (MiB)', f'time x {base}', f'mem x {base}'), rows)


def main(args: argparse.Namespace) -> Dict[str, dict]:
    if args.worker:
        # worker mode: the arguments come from run_isolated as JSON
        worker_args = argparse.Namespace(**json.loads(args.worker))
        result = measure(worker_args, worker_args.worker)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return {result['name']: result}
    check_args(args)
    device = torch.device(args.device)
    print(
        f'torch {torch.__version__}, device {device}, threads '
        f'{args.threads or torch.get_num_threads()}, batch '
        f'{args.batch_size} x {args.img_size}x{args.img_size} px, '
        f'{args.num_objects} objects/image, '
        f'{"AMP" if args.amp else "fp32"}, median of {args.repeats} '
        f'steps after {args.warmup} warm-up; one process per model',
        flush=True)
    results: Dict[str, dict] = {}
    for name in args.models:
        results[name] = run_isolated(args, name)
        print(
            f"{name:28s} {results[name]['s_per_iter']:.3f} s/iter, "
            f"{results[name]['peak_mem_mib']:.0f} MiB",
            flush=True)
    print()
    print(results_table(results))
    print(f"peak mem: {next(iter(results.values()))['memory_method']}, from "
          'just before the model is built; SyncBN run as BN')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main(get_args_parser().parse_args())
