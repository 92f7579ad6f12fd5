"""Train a detector (or any mmengine model) from a config: mmdet's train.py.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Multi-process: tools/dist_train.sh CONFIG N (torchrun; NCCL on GPUs, gloo on
CPU) or tools/slurm_train.sh.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from bcssl_mm.utils import setup_cpu_distributed

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
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. '
        'model.backbone.init_cfg.checkpoint=teacher.pth')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def build_cfg(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the command-line overrides."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(args: argparse.Namespace) -> None:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = build_cfg(args)
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main(get_args_parser().parse_args())
