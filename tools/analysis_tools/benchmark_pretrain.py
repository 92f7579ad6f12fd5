"""Pretraining throughput (images/s) and peak memory: DINO, SelfPatch,
MoCo v3, MAE or D-MAE-Lite.

Times full training steps of a pretraining config. MoCo v3
(``BCSSLMoCoV3``, e.g.
``configs/mocov3/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py``): two
``--global-size`` views, the base encoder and predictor on each, the
momentum encoder's EMA update (momentum 0.99) and its forward on each, the
symmetric loss, backward and the optimizer step; ``--num-local-crops`` and
``--local-size`` do not apply. MAE and D-MAE-Lite (e.g.
``configs/maelite/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py``): one
``--global-size`` image per sample, the masked encoder, the decoder, the loss
(D-MAE-Lite: the teacher on the same visible patches and the attention
loss; the teacher keeps a random initialisation here, which costs the same
as its checkpoint), backward and the step. DINO: full DINO training steps
of a config (default: the paper's BC-SSL-T k9 recipe,
``configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py``):
data preprocessing, the teacher forward on the 2 global crops, the student
forward on all 2 + N crops (one backbone call per resolution), the loss and
center update, backward, per-tensor clipping, the optimizer step and the
teacher's EMA update (what ``DINOHook`` does after each step). SelfPatch
(e.g. ``configs/selfpatch/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.py``)
is timed as DINO, its teacher on all crops and the patch loss included, so
that two runs (a DINO and a SelfPatch config of the same backbone) give the
cost of the patch task. The input is
a synthetic batch of ``--batch-size`` images already cut into 2 global
(``--global-size``) and ``--num-local-crops`` local (``--local-size``) crops,
so the data pipeline is not timed (``DINOMultiCrop`` costs about 60 ms per
image on one CPU core; data loading runs in worker processes in training).
An image counts once, whatever its number of crops.

On one device SyncBN becomes BN (same per-device compute). Without
``--amp`` the step runs in fp32 (DINO: through ``DINOOptimWrapper``);
``--amp`` (CUDA) uses the config's AMP wrapper. Peak memory: see
:class:`bcssl_mm.analysis.bench.PeakMemory`. ``--freeze-last-layer`` times
a step of the first epoch (the projection head's last layer gets no
update), otherwise a step of the later epochs.

``--compare-reference`` (DINO) also times, in the same process and interleaved
step by step with the toolkit's, :class:`ReferenceDINO`: official DINO's
training step (``train_one_epoch`` of github.com/facebookresearch/dino
``main_dino.py``) written out in plain PyTorch on copies of the same
networks and weights, fed the same normalised crops (official DINO
normalises in its data loader). It prints both medians, their ratio and the
largest difference between the two loops' losses (0 while they agree).
``--profile`` prints, for one step of each loop, the operators with the most
self CPU time (``torch.profiler``). The peak memory then covers both loops.

``--baseline CONFIG`` builds a second config (e.g. the plain DINO config of
the backbone a SelfPatch config trains) on the same synthetic batch and
times its steps interleaved with the first config's (A B, B A, ...), so that
both see the same machine state; it prints both medians and their ratio.
The peak memory then covers both models: take each model's peak from a run
of its own.

    python tools/analysis_tools/benchmark_pretrain.py [--batch-size 4]
        [--num-local-crops 8] [--warmup 1] [--repeats 3]
        [--device cuda --amp --batch-size 64] [--config CONFIG]
        [--compare-reference [--freeze-last-layer] [--profile]]
        [--cfg-options KEY=VALUE ...]
    python tools/analysis_tools/benchmark_pretrain.py --config \
        configs/selfpatch/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.py \
        --baseline configs/dino/dino_vit-s-p16_8xb64-amp-coslr-100e_in1k.py
    python tools/analysis_tools/benchmark_pretrain.py --config \
        configs/mocov3/mocov3_vit-s-p16_16xb256-amp-coslr-300e_in1k.py
"""
import argparse
import copy
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.analysis import (PeakMemory, check_finite, format_table,
                               median_and_spread, quiet_mmengine,
                               time_interleaved, time_train_steps)
from bcssl_mm.models.algorithms import set_step_momentum, set_step_teacher_temp

DEFAULT_CONFIG = 'configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'
# values of the first epoch of the recipe (DINOHook's schedules at iter 0)
TEACHER_TEMP = 0.04
MOMENTUM = 0.996
# MoCo v3's momentum at iteration 0 (MoCoV3Hook)
MOCOV3_MOMENTUM = 0.99


def is_mocov3(model: nn.Module) -> bool:
    return hasattr(model, 'update_momentum_encoder')


def is_mae(model: nn.Module) -> bool:
    """mmpretrain's ``MAE`` or its subclass ``DMAELite``."""
    return isinstance(model, MAE)


def algorithm_name(model: nn.Module) -> str:
    """'MoCo v3', 'MAE', 'D-MAE-Lite', 'SelfPatch' (DINO plus the patch
    loss) or 'DINO'."""
    if is_mocov3(model):
        return 'MoCo v3'
    if is_mae(model):
        return 'D-MAE-Lite' if hasattr(model, 'attn_adapter') else 'MAE'
    return 'SelfPatch' if hasattr(model, 'patch_head') else 'DINO'


class ReferenceDINO:
    """Official DINO's training step in plain PyTorch, for comparison.

    Written from the formulas of ``train_one_epoch`` in official DINO's
    ``main_dino.py`` (github.com/facebookresearch/dino): the teacher on the
    global crops, the student on all crops (one backbone call per run of
    equal-sized crops, the head once on all features), the cross-entropy
    over pairs of different views, the center update, backward, per-tensor
    clipping, cancelled last-layer gradients in the first epoch, AdamW with
    two groups (no weight decay for biases and 1-D parameters) and the EMA of
    the teacher's parameters. It works on deep copies of a :class:`DINO`'s
    student and teacher (backbone and the projection head's parameters), so
    both loops start from the same weights; the head's forward is written
    out here.

    Args:
        model (nn.Module): The DINO model to copy.
        optimizer (dict): ``type='AdamW'`` config (``lr``, ``betas``,
            ``weight_decay``).
        max_norm (float): Per-tensor gradient clipping threshold.
    """

    def __init__(self, model: nn.Module, optimizer: dict,
                 max_norm: float) -> None:
        self.student = nn.ModuleDict(
            dict(
                backbone=copy.deepcopy(model.backbone),
                head=copy.deepcopy(model.neck)))
        self.teacher = nn.ModuleDict(
            dict(
                backbone=copy.deepcopy(model.teacher['backbone']),
                head=copy.deepcopy(model.teacher['neck'])))
        loss = model.head.loss_module
        self.center = loss.center.detach().clone()
        self.student_temp = loss.student_temp
        self.center_momentum = loss.center_momentum
        self.num_global = model.num_teacher_views
        self.max_norm = max_norm
        decay, no_decay = [], []
        for name, p in self.student.named_parameters():
            if p.requires_grad:
                no_decay_param = name.endswith('.bias') or p.ndim == 1
                (no_decay if no_decay_param else decay).append(p)
        kwargs = {k: v for k, v in optimizer.items() if k != 'type'}
        self.optimizer = torch.optim.AdamW(
            [dict(params=decay),
             dict(params=no_decay, weight_decay=0.)], **kwargs)

    @staticmethod
    def multi_crop(nets: nn.ModuleDict,
                   crops: Sequence[torch.Tensor]) -> torch.Tensor:
        """(V * N, D) head outputs of V crops (N, 3, H_v, W_v)."""
        feats, start = [], 0
        for end in range(1, len(crops) + 1):
            if end == len(crops) or crops[end].shape != crops[start].shape:
                feats.append(nets['backbone'](torch.cat(crops[start:end]))[-1])
                start = end
        return ReferenceDINO.head(nets['head'], torch.cat(feats))

    @staticmethod
    def head(neck: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Official ``DINOHead``: MLP, L2 normalisation, then the prototypes
        ``g * v / ||v||`` as ``torch.nn.utils.weight_norm`` computes them."""
        x = F.normalize(neck.mlp(x), dim=-1, p=2)
        last = neck.last_layer
        return F.linear(x, torch._weight_norm(last.weight_v, last.weight_g, 0))

    def loss(self, student_out: torch.Tensor, teacher_out: torch.Tensor,
             num_crops: int, teacher_temp: float) -> torch.Tensor:
        student = (student_out / self.student_temp).chunk(num_crops)
        teacher = F.softmax(
            (teacher_out - self.center) / teacher_temp,
            dim=-1).detach().chunk(self.num_global)
        total, terms = 0, 0
        for i, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v != i:
                    total += torch.sum(
                        -q * F.log_softmax(s, dim=-1), dim=-1).mean()
                    terms += 1
        return total / terms

    def step(self, crops: List[torch.Tensor], teacher_temp: float,
             momentum: float, freeze_last_layer: bool) -> float:
        """One training step on normalised crops; returns the loss.
        ``freeze_last_layer``: cancel the last layer's gradients (official
        DINO does so in the first epoch)."""
        with torch.no_grad():
            teacher_out = self.multi_crop(self.teacher,
                                          crops[:self.num_global])
        student_out = self.multi_crop(self.student, crops)
        loss = self.loss(student_out, teacher_out, len(crops), teacher_temp)
        with torch.no_grad():  # single process: the batch mean
            batch_center = teacher_out.sum(
                dim=0, keepdim=True) / teacher_out.shape[0]
            m = self.center_momentum
            self.center = self.center * m + batch_center * (1 - m)
        self.optimizer.zero_grad()
        loss.backward()
        for p in self.student.parameters():
            if p.grad is not None:
                coef = self.max_norm / (p.grad.norm(2) + 1e-6)
                if coef < 1:
                    p.grad.mul_(coef)
        if freeze_last_layer:
            for p in self.student['head'].last_layer.parameters():
                p.grad = None
        self.optimizer.step()
        with torch.no_grad():
            for s, t in zip(self.student.parameters(),
                            self.teacher.parameters()):
                t.mul_(momentum).add_(s.detach(), alpha=1. - momentum)
        return loss.item()


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
        '--freeze-last-layer',
        action='store_true',
        help='time a first-epoch step (last layer not updated)')
    parser.add_argument(
        '--compare-reference',
        action='store_true',
        help='also time official DINO\'s loop in plain PyTorch, '
        'interleaved, and print the ratio')
    parser.add_argument(
        '--baseline',
        metavar='CONFIG',
        help='also time this config\'s steps, interleaved, and print the '
        'ratio (e.g. plain DINO against SelfPatch)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='with --compare-reference: top operators by self CPU time of '
        'one step of each loop')
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
    if args.compare_reference and args.amp:
        raise ValueError('--compare-reference runs fp32 only (no --amp)')
    if args.compare_reference and args.baseline:
        raise ValueError('give --compare-reference or --baseline, not both')
    if args.profile and not args.compare_reference:
        raise ValueError('--profile needs --compare-reference')


def synthetic_views(args: argparse.Namespace, mocov3: bool = False) -> list:
    g = torch.Generator().manual_seed(args.seed)
    num_local = 0 if mocov3 else args.num_local_crops
    sizes = [args.global_size] * 2 + [args.local_size] * num_local
    return [
        torch.randint(0, 256, (args.batch_size, 3, s, s), generator=g).float()
        for s in sizes
    ]


def interleave(steps: Dict[str, Callable[[], float]], device: torch.device,
               args: argparse.Namespace) -> Dict[str, tuple]:
    """:func:`~bcssl_mm.analysis.bench.time_interleaved` of steps returning
    the loss (A B, B A, ...), the RNG reseeded before every step so that the
    loops draw the same drop-path masks; a non-finite loss is an error.

    Returns:
        dict: name -> (times of the timed steps, losses of every step).
    """
    out = time_interleaved(steps, device, args.warmup, args.repeats, args.seed)
    for name, (_, losses) in out.items():
        check_finite(losses, name)
    return out


def profile_table(step: Callable[[], float], rows: int = 15) -> str:
    """Operators of one ``step`` by self CPU time (torch.profiler)."""
    with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return prof.key_averages().table(
        sort_by='self_cpu_time_total', row_limit=rows)


def build(args: argparse.Namespace) -> tuple:
    """The model (BN instead of SyncBN, on ``args.device``), its optimizer
    wrapper (fp32 unless ``--amp``: ``DINOOptimWrapper`` for DINO,
    ``OptimWrapper`` for MoCo v3), the wrapper's config and a synthetic
    batch."""
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('teacher_checkpoint'):
        # NOTE: a D-MAE-Lite teacher costs the same with random weights
        cfg.model.teacher_checkpoint = None
    torch.manual_seed(args.seed)
    # quiet: init_weights and the optimizer log every parameter
    with DefaultScope.overwrite_default_scope('mmpretrain'), quiet_mmengine():
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        mocov3 = is_mocov3(model)
        if args.compare_reference and algorithm_name(model) != 'DINO':
            raise ValueError('--compare-reference is for DINO configs; '
                             f'{args.config} is {algorithm_name(model)}')
        model.init_weights()
        model = model.to(device).train()
        if args.compare_reference:
            # NOTE: the reference loop runs on deep copies; the toolkit's
            # gets one too, so that neither gains from where its tensors
            # happen to lie in memory (the same toolkit step on the built
            # model took 1.008x the time it took on a deep copy of it)
            model = copy.deepcopy(model)
        mae = is_mae(model)
        ow_cfg = cfg.optim_wrapper.to_dict()
        if not args.amp:
            ow_cfg['type'] = 'OptimWrapper' if (mocov3
                                                or mae) else 'DINOOptimWrapper'
            ow_cfg.pop('loss_scale', None)
        optim_wrapper = build_optim_wrapper(model, ow_cfg)
    views = [v.to(device) for v in synthetic_views(args, mocov3 or mae)]
    # MAE: one view, the batch tensor itself
    data = dict(
        inputs=views[0] if mae else views,
        data_samples=[None] * args.batch_size)
    return model, optim_wrapper, ow_cfg, data


def toolkit_step(model: nn.Module, optim_wrapper, data: dict,
                 freeze_last_layer: bool) -> float:
    """What the runner does for one iteration with ``DINOHook`` (first
    epoch if ``freeze_last_layer``) or ``MoCoV3Hook``; returns the loss."""
    if is_mae(model):
        return model.train_step(data, optim_wrapper)['loss'].item()
    if is_mocov3(model):
        set_step_momentum(MOCOV3_MOMENTUM)
        return model.train_step(data, optim_wrapper)['loss'].item()
    optim_wrapper.frozen_params = [
        p for layer in model.last_layers() for p in layer.parameters()
        if p.requires_grad
    ] if freeze_last_layer else []
    set_step_teacher_temp(TEACHER_TEMP)
    log_vars = model.train_step(data, optim_wrapper)
    model.update_teacher(MOMENTUM)
    return log_vars['loss'].item()


def measure(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    memory = PeakMemory(device)
    memory.start()
    model, optim_wrapper, ow_cfg, data = build(args)

    def step() -> dict:
        return dict(
            loss=toolkit_step(model, optim_wrapper, data,
                              args.freeze_last_layer))

    mocov3 = is_mocov3(model)
    result = dict(
        config=args.config,
        algorithm=algorithm_name(model),
        backbone=type(model.backbone).__name__,
        kernel_size=getattr(model.backbone, 'kernel_size', None),
        device=str(device),
        threads=torch.get_num_threads(),
        amp=args.amp,
        batch_size=args.batch_size,
        crops=f'1x{args.global_size}'
        if is_mae(model) else f'2x{args.global_size}' if mocov3 else
        f'2x{args.global_size} + {args.num_local_crops}x{args.local_size}',
        freeze_last_layer=args.freeze_last_layer,
        warmup=args.warmup,
        repeats=args.repeats,
        student_params_m=sum(
            p.numel() for n, p in model.named_parameters()
            if not n.startswith(('teacher.', 'momentum_encoder.'))) / 1e6)
    if args.compare_reference:
        reference = ReferenceDINO(model, ow_cfg['optimizer'],
                                  ow_cfg['clip_grad']['max_norm'])
        with torch.no_grad():  # official DINO normalises in its loader
            crops = model.data_preprocessor(data, True)['inputs']
        steps = dict(
            toolkit=lambda: step()['loss'],
            reference=lambda: reference.step(crops, TEACHER_TEMP, MOMENTUM,
                                             args.freeze_last_layer))
        timed = interleave(steps, device, args)
        times, losses = timed['toolkit']
        ref_median = median_and_spread(timed['reference'][0])[0]
        result.update(
            ref_s_per_iter=ref_median,
            ref_losses=timed['reference'][1],
            max_loss_diff=max(
                abs(a - b) for a, b in zip(losses, timed['reference'][1])))
        if args.profile:
            result['profiles'] = {
                name: profile_table(fn)
                for name, fn in steps.items()
            }
    elif args.baseline:
        base_model, base_ow, _, base_data = build(
            argparse.Namespace(**dict(vars(args), config=args.baseline)))
        steps = dict(
            toolkit=lambda: step()['loss'],
            baseline=lambda: toolkit_step(base_model, base_ow, base_data, args.
                                          freeze_last_layer))
        timed = interleave(steps, device, args)
        times, losses = timed['toolkit']
        result.update(
            baseline=args.baseline,
            baseline_algorithm=algorithm_name(base_model),
            baseline_s_per_iter=median_and_spread(timed['baseline'][0])[0],
            baseline_spread=median_and_spread(timed['baseline'][0])[1],
            baseline_losses=timed['baseline'][1])
    else:
        times, losses = time_train_steps(step, device, args.warmup,
                                         args.repeats, result['algorithm'])
    median, spread = median_and_spread(times)
    result.update(
        s_per_iter=median,
        img_per_s=args.batch_size / median,
        spread=spread,
        peak_mem_mib=memory.peak_bytes() / 2**20,
        memory_method=memory.method,
        losses=losses)
    if args.compare_reference:
        result['ratio'] = median / result['ref_s_per_iter']
    if args.baseline:
        result['baseline_ratio'] = median / result['baseline_s_per_iter']
    return result


def format_result(r: dict) -> str:
    lines = [
        f"{r['config']}: {r['algorithm']}, {r['backbone']}" +
        (f" k{r['kernel_size']}" if r['kernel_size'] else '') +
        f", {r['student_params_m']:.1f}M trained parameters",
        f"torch {torch.__version__}, device {r['device']}, threads "
        f"{r['threads']}, amp {r['amp']}, batch {r['batch_size']}, crops "
        f"{r['crops']}, median of {r['repeats']} steps after {r['warmup']} "
        'warm-up',
        '',
        format_table(
            ('s/iter', 'img/s', 'spread', 'peak memory (MiB)'),
            [(f"{r['s_per_iter']:.2f}", f"{r['img_per_s']:.2f}",
              f"{100 * r['spread']:.0f}%", f"{r['peak_mem_mib']:.0f}")],
            style='markdown',
            notes=[
                f"peak memory: {r['memory_method']}; losses "
                f"{', '.join(f'{x:.3f}' for x in r['losses'])}"
            ]),
    ]
    if 'ratio' in r:
        lines += [
            '',
            'interleaved with official DINO\'s loop in plain PyTorch '
            f"(first epoch: {r['freeze_last_layer']}):",
            '',
            format_table(
                ('loop', 's/iter'),
                [('toolkit', f"{r['s_per_iter']:.3f}"),
                 ('reference', f"{r['ref_s_per_iter']:.3f}"),
                 ('ratio', f"{r['ratio']:.3f}")],
                style='markdown',
                notes=['largest loss difference '
                       f"{r['max_loss_diff']:.2e}"]),
        ]
    if 'baseline_ratio' in r:
        lines += [
            '',
            f"interleaved with {r['baseline']} ({r['baseline_algorithm']}), "
            'same batch:',
            '',
            format_table(('config', 's/iter', 'spread'),
                         [(r['algorithm'], f"{r['s_per_iter']:.3f}",
                           f"{100 * r['spread']:.0f}%"),
                          (f"{r['baseline_algorithm']} (baseline)",
                           f"{r['baseline_s_per_iter']:.3f}",
                           f"{100 * r['baseline_spread']:.0f}%"),
                          ('ratio', f"{r['baseline_ratio']:.3f}", '')],
                         style='markdown'),
        ]
    for name, table in r.get('profiles', {}).items():
        lines += ['', f'{name}: one step by self CPU time', table]
    return '\n'.join(lines)


def main(args: argparse.Namespace) -> dict:
    check_args(args)
    result = measure(args)
    print(format_result(result))
    return result


if __name__ == '__main__':
    main(get_args_parser().parse_args())
