"""Train a detector (or any mmengine model) from a config: mmdet's train.py.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Multi-process: tools/dist_train.sh CONFIG N (torchrun; NCCL on GPUs, gloo on
CPU) or tools/slurm_train.sh.
"""
import argparse
import os

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from bcssl_mm.datasets import AnnotationError, check_config_annotations
from bcssl_mm.models.utils import CheckpointMismatchError
from bcssl_mm.utils import (CheckpointLoadError, find_resume_checkpoint,
                            setup_cpu_distributed, teardown_distributed)
from bcssl_mm.utils.config_check import (ConfigError, add_runner_args,
                                         check_config, load_config)

# optim_wrapper.type -> its mixed-precision counterpart, for --amp
AMP_WRAPPERS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'DINOOptimWrapper': 'DINOAmpOptimWrapper'
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go; default '
        'work_dirs/<config name>')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper or '
        'DINOAmpOptimWrapper; GPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by total batch / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or without a value from the latest '
        'checkpoint in the work dir (a finished run then ends at once)')
    add_runner_args(
        parser, 'override config keys, e.g. '
        'model.backbone.init_cfg.checkpoint=teacher.pth')
    return parser


def build_cfg(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the command-line overrides."""
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)

    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in AMP_WRAPPERS.values():
            if wrapper not in AMP_WRAPPERS:
                raise ValueError(
                    f'{args.config}: --amp does not know the AMP variant of '
                    f'optim_wrapper.type {wrapper!r}; known: '
                    f'{sorted(AMP_WRAPPERS)}')
            cfg.optim_wrapper.type = AMP_WRAPPERS[wrapper]
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise KeyError(f'{args.config}: --auto-scale-lr needs '
                           'auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        # mmengine would trust work_dir/last_checkpoint blindly
        cfg.load_from = find_resume_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(args: argparse.Namespace) -> None:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = build_cfg(args)
    # everything that can fail before training fails here, not after an
    # epoch of work
    check_config(cfg, args.config)
    check_config_annotations(cfg, splits=('train', 'val'))
    hooks = cfg.setdefault('custom_hooks', [])
    if not any(h.get('type') == 'LRWarmupCheckHook' for h in hooks):
        hooks.append(dict(type='LRWarmupCheckHook'))
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()
    del runner  # its DDP wrapper holds the process group
    teardown_distributed()


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (AnnotationError, CheckpointLoadError, CheckpointMismatchError,
            ConfigError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
