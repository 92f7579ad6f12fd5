"""Evaluate a checkpoint on a config's test set: mmdet's test.py.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl]
        [--pretrain-name NAME] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

Prints the COCO bbox / segm AP table and writes it, with the pretraining run
the backbone started from, to ``<work dir>/coco.result.json``
(``bcssl_mm/evaluation/results.py``), which
``tools/analysis_tools/collect_results.py`` compares with the paper's
Table 4. CHECKPOINT may be a checkpoint file or a work dir's
``last_checkpoint`` file (which holds the path of one).

The pretraining run is read from the meta of CONFIG's backbone checkpoint
(``model.backbone.init_cfg.checkpoint``): an extracted DINO teacher keeps
its run's ``experiment_name``. A detector trained with that key overridden
is tested with the same ``--cfg-options`` (it only names the run; the
weights come from CHECKPOINT), or with ``--pretrain-name``, which also names
a backbone trained from random initialisation (the demo's
``random_bcssl-atto-k9_init_shapes``).
"""
import argparse
import os
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from bcssl_mm.analysis import format_table
from bcssl_mm.datasets import AnnotationError, check_config_annotations
from bcssl_mm.evaluation.results import (backbone_init_checkpoint,
                                         pretrain_from_checkpoint,
                                         write_result)
from bcssl_mm.models.utils import CheckpointMismatchError
from bcssl_mm.utils import (CheckpointLoadError, setup_cpu_distributed,
                            teardown_distributed)
from bcssl_mm.utils.config_check import (ConfigError, add_runner_args,
                                         check_config, load_config)

COCO_COLUMNS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', help='checkpoint file, or a last_checkpoint file')
    parser.add_argument('--work-dir', help='where evaluation logs go')
    parser.add_argument(
        '--out', help='dump the predictions to this pickle file')
    parser.add_argument(
        '--show-dir', help='save images with drawn predictions here')
    parser.add_argument(
        '--pretrain-name',
        help='the pretraining run of the backbone, for coco.result.json '
        '(e.g. random_bcssl-atto-k9_init_shapes); default: the '
        'experiment_name in the meta of the backbone checkpoint the model '
        'was fine-tuned from')
    add_runner_args(parser)
    return parser


def resolve_checkpoint(path: str) -> str:
    """``path`` itself, or the checkpoint a ``last_checkpoint`` file names."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if osp.basename(path) == 'last_checkpoint':
        with open(path) as f:
            target = f.read().strip()
        if not osp.isfile(target):
            raise FileNotFoundError(
                f'{path} names {target!r}, which does not exist')
        return target
    return path


def load_strictly(runner: Runner, checkpoint: str, config: str) -> None:
    """Load ``checkpoint`` into the runner's model, refusing any mismatch.

    mmengine's test-time ``load_from`` is not strict: a checkpoint of
    another architecture (a k7 backbone into a k9 config) would be evaluated
    half-random. The runner then skips its own load (``load_from`` unset).

    Raises:
        CheckpointMismatchError: Lists the missing, unexpected and
            mis-shaped keys.
    """
    try:
        runner.load_checkpoint(checkpoint, map_location='cpu', strict=True)
    except RuntimeError as e:
        if isinstance(e, CheckpointLoadError):
            raise
        raise CheckpointMismatchError(
            f'{checkpoint} does not match the model of {config}; nothing '
            f'was evaluated:\n{e}') from None


def detector_pretrain(cfg: Config, override: Optional[str]) -> Dict[str, Any]:
    """The ``pretrain`` entry of the COCO result: ``override``
    (``--pretrain-name``), else what the meta of the config's backbone
    checkpoint says (:func:`~bcssl_mm.evaluation.results.
    pretrain_from_checkpoint`), else ``random-init``."""
    # NOTE: the training config that mmengine keeps in the detector
    # checkpoint's meta would know a --cfg-options checkpoint, but reading it
    # means executing text from a checkpoint, which weights_only loading is
    # there to prevent
    return pretrain_from_checkpoint(backbone_init_checkpoint(cfg), override)


def format_coco_table(metrics: Dict[str, float]) -> str:
    """The COCO bbox / segm AP table of an evaluation's metrics dict."""
    rows = []
    for iou_type in ('bbox', 'segm'):
        values = [metrics.get(f'coco/{iou_type}_{c}') for c in COCO_COLUMNS]
        if all(v is None for v in values):
            continue
        # COCOeval reports -1 for "no data" (e.g. no small objects)
        rows.append(
            [iou_type] +
            ['-' if v is None or v < 0 else f'{100 * v:.1f}' for v in values])
    if not rows:
        return 'no COCO bbox/segm metrics in the results'
    return format_table(['', 'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'],
                        rows,
                        align='>',
                        style='grid')


def write_coco_result(work_dir: str, metrics: Dict[str, Any],
                      pretrain: Dict[str, Any], config: str, checkpoint: str,
                      cfg: Config) -> str:
    """Write the ``coco/*`` metrics to ``<work_dir>/coco.result.json``."""
    coco = {
        k: v
        for k, v in metrics.items() if k.startswith('coco/')
        and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    # test_evaluator is a list once --out adds DumpDetResults
    evaluators = cfg.get('test_evaluator') or []
    if not isinstance(evaluators, list):
        evaluators = [evaluators]
    ann_files = [e['ann_file'] for e in evaluators if e.get('ann_file')]
    source = dict(
        config=config,
        checkpoint=checkpoint,
        backbone_checkpoint=backbone_init_checkpoint(cfg),
        dataset=ann_files[0] if ann_files else None)
    return write_result(work_dir, 'coco', coco, pretrain, source)


def main(args: argparse.Namespace) -> Dict[str, float]:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    checkpoint = resolve_checkpoint(args.checkpoint)
    cfg.load_from = None  # loaded strictly below instead
    check_config(cfg, args.config)
    check_config_annotations(cfg, splits=('test', ))
    # read before any work: a backbone checkpoint that is refused stops the
    # run here, not after the evaluation
    pretrain = detector_pretrain(cfg, args.pretrain_name)

    if args.show_dir:
        vis_hook = cfg.default_hooks.get('visualization')
        if vis_hook is None:
            raise KeyError(f'{args.config}: --show-dir needs '
                           'default_hooks.visualization')
        vis_hook.update(draw=True, test_out_dir=args.show_dir)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out!r} must be a .pkl file')
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, list):
            evaluators = [evaluators]
        cfg.test_evaluator = evaluators + [
            dict(type='DumpDetResults', out_file_path=args.out)
        ]

    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    load_strictly(runner, checkpoint, args.config)
    metrics = runner.test()
    if runner.rank == 0:
        print(f'\nCOCO results of {checkpoint} on {args.config}:')
        print(format_coco_table(metrics), flush=True)
        path = write_coco_result(runner.work_dir, metrics, pretrain,
                                 args.config, checkpoint, cfg)
        print(f'results written to {path}', flush=True)
    del runner  # its DDP wrapper holds the process group
    teardown_distributed()
    return metrics


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (AnnotationError, CheckpointLoadError, CheckpointMismatchError,
            ConfigError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
