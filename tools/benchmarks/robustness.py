"""Robustness of a linear-probe classifier (paper Table 5).

    python tools/benchmarks/robustness.py CONFIG CHECKPOINT
        [--imagenet-c DIR] [--imagenet-a DIR] [--imagenet-r DIR]
        [--imagenet-sketch DIR] [--corrupted DIR]
        [--corruptions NAME ...] [--severities S ...] [--reference RESULT]
        [--work-dir DIR] [--batch-size N] [--num-workers N]
        [--pretrain-name NAME] [--device DEVICE] [--cfg-options K=V ...]

CONFIG is an mmpretrain ``ImageClassifier`` config (a linear probe of
``configs/dino/benchmarks/``) and CHECKPOINT its trained weights, loaded
strictly with ``torch.load(weights_only=True)``. The model is evaluated
unchanged (eval mode) on each set given:

- ``--imagenet-c``: ImageNet-C's published layout,
  ``<corruption>/<severity 1-5>/<wnid>/*.JPEG``, 224-px images: the
  config's test pipeline without its resize steps (a centre crop only).
  Top-1 error per corruption and severity, CE normalised by AlexNet's
  errors and mCE over the 15 corruptions (``imagenet_c.result.json``);
- ``--imagenet-a`` / ``--imagenet-r``: class folders named by wnid, a
  subset of the 200 of timm's lists; scored on the 200 matching logits of
  the 1000-way head; the config's test pipeline (``imagenet_a`` /
  ``imagenet_r``);
- ``--imagenet-sketch``: 1000 wnid folders, all 1000 logits
  (``imagenet_sketch``);
- ``--corrupted``: a corrupted copy of any labelled folder written by
  ``tools/data/make_corruptions.py``, ImageNet-C's layout with the class
  folders of the config's test dataset; the config's test pipeline
  (``corruption``). Errors and their mean always; CE and mCE only against
  ``--reference``, another model's ``corruption`` result file (AlexNet's
  errors mean nothing on other data), e.g. the random-init probe of the
  demo.

Every corruption and severity found is evaluated, or those of
``--corruptions`` / ``--severities`` (ImageNet-C: the 15 x 5 by default;
its mCE is written only when all 15 were run). Results go to
``<work-dir>/<kind>.result.json`` (default work dir
``work_dirs/<config name>``); the pretraining run is named by
``--pretrain-name``, else by the backbone's ``init_cfg`` checkpoint, else by
CHECKPOINT's own ``meta.experiment_name``.
"""
import argparse
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings
from torch.utils.data import ConcatDataset

from bcssl_mm.analysis import format_table
from bcssl_mm.evaluation.results import (ResultFileError,
                                         backbone_init_checkpoint,
                                         pretrain_from_checkpoint, read_result,
                                         write_result)
from bcssl_mm.evaluation.robustness import (ALEXNET_ERRORS,
                                            IMAGENET_C_CORRUPTIONS, SEVERITIES,
                                            check_class_folders,
                                            corruption_metrics,
                                            errors_from_metrics,
                                            imagenet_1k_synsets,
                                            imagenet_subset, masked_logits,
                                            topk_correct)
from bcssl_mm.models.utils import CheckpointMismatchError
from bcssl_mm.models.utils.checkpoint import load_backbone_checkpoint
from bcssl_mm.utils import CheckpointLoadError
from bcssl_mm.utils.config_check import ConfigError, load_config

SETS = ('imagenet_c', 'imagenet_a', 'imagenet_r', 'imagenet_sketch',
        'corrupted')
ALEXNET_SOURCE = ('AlexNet ImageNet-C errors (hendrycks/robustness, via '
                  'google-research/augmix imagenet.py)')

# NOTE: mmengine serialises a dataset's image list so that loader workers do
# not copy it, and runs gc.collect() to do so (0.5 s per dataset here): more
# than evaluating a small set, e.g. the 75 folders of a corrupted demo set
SERIALIZE_ABOVE = 5000


class LayoutError(ValueError):
    """A dataset folder not laid out as expected; the message names it."""


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Evaluate a linear-probe classifier on ImageNet-C, -A, '
        '-R, -Sketch or a generated corrupted set')
    parser.add_argument('config', help='mmpretrain ImageClassifier config')
    parser.add_argument('checkpoint', help='its trained checkpoint')
    parser.add_argument('--imagenet-c', metavar='DIR', help='ImageNet-C root')
    parser.add_argument('--imagenet-a', metavar='DIR', help='ImageNet-A root')
    parser.add_argument('--imagenet-r', metavar='DIR', help='ImageNet-R root')
    parser.add_argument(
        '--imagenet-sketch', metavar='DIR', help='ImageNet-Sketch root')
    parser.add_argument(
        '--corrupted',
        metavar='DIR',
        help='output of tools/data/make_corruptions.py for the config\'s '
        'test set')
    parser.add_argument(
        '--corruptions',
        nargs='+',
        metavar='NAME',
        help='corruptions to evaluate (default: ImageNet-C\'s 15; every one '
        'found for --corrupted)')
    parser.add_argument(
        '--severities',
        nargs='+',
        type=int,
        metavar='S',
        help='severities to evaluate (default: 1-5; every one found for '
        '--corrupted)')
    parser.add_argument(
        '--reference',
        metavar='RESULT',
        help='a corruption / imagenet_c result file of another model whose '
        'errors normalise CE (default: AlexNet\'s for ImageNet-C, none for '
        '--corrupted)')
    parser.add_argument(
        '--work-dir',
        help='where the result files go (default: work_dirs/<config name>)')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='images per batch (default: the config\'s test_dataloader)')
    parser.add_argument(
        '--num-workers',
        type=int,
        help='data loading workers (default: the config\'s test_dataloader)')
    parser.add_argument(
        '--pretrain-name',
        help='name of the pretraining run in the result files (e.g. '
        'random_bcssl-atto-k9_init_shapes)')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='torch device (default: %(default)s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys')
    return parser


# --- model -------------------------------------------------------------------


def build_classifier(cfg: Config, checkpoint: str,
                     device: str) -> torch.nn.Module:
    """The config's model with ``checkpoint`` loaded strictly, in eval mode.

    The backbone's ``init_cfg`` is not run: every weight comes from the
    checkpoint, which must match the model key for key.
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        # as mmengine's Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    load_backbone_checkpoint(model, checkpoint, prefix=None)
    return model.to(device).eval()


def pretrain_entry(cfg: Config, checkpoint: str,
                   name: Optional[str]) -> Dict[str, Any]:
    """The pretraining run: ``name``, else the backbone's init checkpoint's,
    else the classifier checkpoint's own run."""
    if name:
        return pretrain_from_checkpoint(None, override=name)
    init = backbone_init_checkpoint(cfg)
    return pretrain_from_checkpoint(init if init else checkpoint)


# --- data --------------------------------------------------------------------


def config_test_pipeline(cfg: Config, drop_resize: bool = False) -> List[dict]:
    """The config's test pipeline, without its resize steps if asked."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    pipeline = dataset.get('pipeline', cfg.get('test_pipeline'))
    if not pipeline:
        raise ConfigError('the config has no test_dataloader.dataset.'
                          'pipeline nor test_pipeline')
    pipeline = [dict(t) for t in pipeline]
    if drop_resize:
        pipeline = [t for t in pipeline if 'Resize' not in t['type']]
    return pipeline


def describe(pipeline: List[dict]) -> str:
    return ' + '.join(
        t['type'] +
        ''.join(f' {v}'
                for k, v in t.items() if k in ('scale', 'crop_size', 'edge'))
        for t in pipeline)


def class_folders(root: str) -> List[str]:
    if not osp.isdir(root):
        raise LayoutError(f'{root}: no such folder')
    folders = sorted(
        d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
    if not folders:
        raise LayoutError(f'{root}: no class folders')
    return folders


def build_folder(root: str, pipeline: List[dict], classes: List[str],
                 name: str) -> Tuple[Any, np.ndarray]:
    """A ``CustomDataset`` of ``root`` and each image's index in ``classes``.

    Raises:
        LayoutError: ``root`` has no images, or a class folder that is not
            one of ``classes``.
    """
    from mmpretrain.datasets import CustomDataset
    folders = class_folders(root)
    try:
        position = check_class_folders(folders, classes, root, name)
    except ValueError as e:
        raise LayoutError(str(e)) from None
    try:
        dataset = CustomDataset(
            data_root=root, pipeline=pipeline, serialize_data=False)
        if len(dataset) > SERIALIZE_ABOVE:
            dataset = CustomDataset(data_root=root, pipeline=pipeline)
    except RuntimeError as e:  # 'Found 0 files in subfolders of ...'
        raise LayoutError(f'{root}: {e}') from None
    # CustomDataset labels images by the sorted class folders
    targets = np.asarray(position)[dataset.get_gt_labels()]
    return dataset, targets


def corruption_folders(root: str, corruptions: Optional[Sequence[str]],
                       severities: Optional[Sequence[int]],
                       name: str) -> List[Tuple[str, int]]:
    """The ``(corruption, severity)`` folders to evaluate under ``root``.

    Named ones must exist; unnamed ones are every folder found, where each
    corruption folder holds only severity folders ``1``-``5``.
    """
    if not osp.isdir(root):
        raise LayoutError(f'{name} {root}: no such folder')
    if corruptions is None:
        # ImageNet-C's order first, any other corruption after
        order = {c: i for i, c in enumerate(IMAGENET_C_CORRUPTIONS)}
        corruptions = sorted(
            (d for d in os.listdir(root) if osp.isdir(osp.join(root, d))),
            key=lambda c: (order.get(c, len(order)), c))
        if not corruptions:
            raise LayoutError(f'{name} {root}: no corruption folders '
                              '(<corruption>/<severity>/<class>/*)')
    pairs, missing = [], []
    for corruption in corruptions:
        path = osp.join(root, corruption)
        if not osp.isdir(path):
            missing.append(path)
            continue
        found = sorted(os.listdir(path))
        bad = [s for s in found if not re.fullmatch(r'[1-5]', s)]
        if bad:
            raise LayoutError(f'{name}: {path} holds {bad}; expected only '
                              'severity folders 1-5')
        for severity in severities or [int(s) for s in found]:
            if osp.isdir(osp.join(path, str(severity))):
                pairs.append((corruption, severity))
            else:
                missing.append(osp.join(path, str(severity)))
    if missing:
        shown = ', '.join(missing[:6]) + (', ...' if len(missing) > 6 else '')
        raise LayoutError(f'{name}: {len(missing)} folder(s) missing (layout '
                          f'<corruption>/<severity>/<class>/*): {shown}')
    return pairs


def config_classes(cfg: Config) -> List[str]:
    """The class names of the config's test dataset."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import DATASETS
    dataset_cfg = dict(cfg.test_dataloader.dataset, pipeline=[])
    dataset = DATASETS.build(dataset_cfg)
    classes = dataset.metainfo.get('classes')
    if not classes:
        raise ConfigError('the config\'s test dataset has no classes '
                          f'({dataset_cfg.get("data_root")})')
    return list(classes)


# --- evaluation --------------------------------------------------------------


@torch.no_grad()
def evaluate(model: torch.nn.Module,
             datasets: Sequence[Any],
             targets: Sequence[np.ndarray],
             batch_size: int,
             num_workers: int,
             mask: Optional[List[int]] = None,
             num_classes: Optional[int] = None) -> List[Dict[str, float]]:
    """Top-1 / top-5 accuracy (%) of ``model`` on each of ``datasets``.

    One loader runs over all of them (in order, no shuffling).

    Args:
        model: An mmpretrain classifier in eval mode.
        datasets: Datasets yielding packed inputs.
        targets: Per dataset, each image's class index in the scored
            logits.
        batch_size (int): Images per batch.
        num_workers (int): Loader workers.
        mask (list[int], optional): Keep only these logits
            (``logits[:, mask]``), ImageNet-A / -R.
        num_classes (int, optional): The number of logits the head must
            have (1000 for the ImageNet sets).

    Returns:
        list[dict]: Per dataset, ``top1``, ``top5`` (when there are at least
        5 classes), the top-1 ``error`` (a fraction) and ``num_images``.
    """
    loader = Runner.build_dataloader(
        dict(
            batch_size=batch_size,
            num_workers=num_workers,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=ConcatDataset(datasets)))
    all_targets = torch.from_numpy(np.concatenate(targets)).long()
    top1, top5 = [], []
    seen = 0
    for data in loader:
        data = model.data_preprocessor(data, False)
        logits = model(data['inputs'], mode='tensor')  # (B, C)
        if num_classes is not None and logits.shape[1] != num_classes:
            raise ValueError(
                f'the classifier has {logits.shape[1]} outputs; this set '
                f'is scored on a {num_classes}-way ImageNet head')
        scores = masked_logits(logits, mask) if mask else logits
        target = all_targets[seen:seen + len(scores)].to(scores.device)
        seen += len(scores)
        top1.append(topk_correct(scores, target, 1).cpu())
        if scores.shape[1] >= 5:
            top5.append(topk_correct(scores, target, 5).cpu())
    assert seen == len(all_targets), (seen, len(all_targets))
    correct1 = torch.cat(top1)
    correct5 = torch.cat(top5) if top5 else None
    out, start = [], 0
    for dataset in datasets:
        end = start + len(dataset)
        # counts, then one division: no float32 rounding in the results
        hits = int(correct1[start:end].sum())
        scores = dict(
            top1=100. * hits / (end - start),
            error=(end - start - hits) / (end - start),
            num_images=end - start)
        if correct5 is not None:
            scores['top5'] = 100. * int(correct5[start:end].sum()) / (
                end - start)
        out.append(scores)
        start = end
    return out


def prepare_corruptions(cfg: Config, args: argparse.Namespace, kind: str,
                        root: str) -> Dict[str, Any]:
    """Check a corrupted set's layout and build its datasets."""
    imagenet = kind == 'imagenet_c'
    name = 'ImageNet-C' if imagenet else 'corrupted set'
    corruptions, severities = args.corruptions, args.severities
    if imagenet:
        corruptions = corruptions or list(IMAGENET_C_CORRUPTIONS)
        severities = severities or list(SEVERITIES)
    pairs = corruption_folders(root, corruptions, severities, name)
    classes = imagenet_1k_synsets() if imagenet else config_classes(cfg)
    pipeline = config_test_pipeline(cfg, drop_resize=imagenet)
    datasets, targets = [], []
    for corruption, severity in pairs:
        dataset, target = build_folder(
            osp.join(root, corruption, str(severity)), pipeline, classes, name)
        datasets.append(dataset)
        targets.append(target)
    return dict(
        kind=kind,
        root=root,
        pairs=pairs,
        datasets=datasets,
        targets=targets,
        mask=None,
        num_classes=1000 if imagenet else None,
        pipeline=pipeline,
        notes=[])


def prepare_imagenet_variant(cfg: Config, kind: str,
                             root: str) -> Dict[str, Any]:
    """Check ImageNet-A, -R or -Sketch's class folders; build the dataset.
    """
    pipeline = config_test_pipeline(cfg)
    if kind == 'imagenet_sketch':
        mask, classes, name = None, imagenet_1k_synsets(), 'ImageNet-Sketch'
    else:
        name = 'ImageNet-' + kind[-1].upper()
        mask, classes = imagenet_subset(kind.replace('_', '-'))
    dataset, target = build_folder(root, pipeline, classes, name)
    num_folders = len(class_folders(root))
    notes = []
    if num_folders < len(classes):
        notes.append(f'{num_folders} of the {len(classes)} classes present; '
                     f'every prediction is still among all {len(classes)}')
    return dict(
        kind=kind,
        root=root,
        datasets=[dataset],
        targets=[target],
        mask=mask,
        num_classes=1000,
        pipeline=pipeline,
        notes=notes)


def corruption_result(plan: Dict[str, Any], scores: List[Dict[str, float]],
                      reference_file: Optional[str]) -> Dict[str, Any]:
    """Errors per corruption and severity, CE and mCE, of one set."""
    imagenet = plan['kind'] == 'imagenet_c'
    errors: Dict[str, Dict[int, float]] = {}
    for (corruption, severity), score in zip(plan['pairs'], scores):
        errors.setdefault(corruption, {})[severity] = score['error']
    reference, ref_source = None, None
    if reference_file:
        ref = read_result(reference_file)
        try:
            reference = errors_from_metrics(ref['metrics'], reference_file)
        except ValueError as e:
            raise ResultFileError(str(e)) from None
        ref_source = f'{reference_file} ({ref["pretrain"]["name"]})'
    elif imagenet and all(
            tuple(sorted(table)) == SEVERITIES for table in errors.values()):
        reference, ref_source = ALEXNET_ERRORS, ALEXNET_SOURCE
    try:
        metrics = corruption_metrics(errors, reference)
    except ValueError as e:  # the reference lacks a corruption / severity
        raise ResultFileError(f'--reference {reference_file}: {e}') from None
    notes = list(plan['notes'])
    if imagenet and 'mCE' in metrics and \
            set(errors) != set(IMAGENET_C_CORRUPTIONS):
        del metrics['mCE']
        notes.append(f'mCE needs all 15 corruptions; {len(errors)} run')
    if reference is None:
        notes.append('no CE / mCE: ' + (
            'AlexNet\'s errors are means over severities 1-5'
            if imagenet else 'pass --reference RESULT of another model'))
    else:
        notes.append(f'CE normalised by {ref_source}')
    return dict(
        metrics=metrics,
        table=format_errors(errors, metrics, notes),
        source=dict(reference=ref_source))


def variant_result(plan: Dict[str, Any],
                   scores: List[Dict[str, float]]) -> Dict[str, Any]:
    """Top-1 / top-5 on ImageNet-A, -R (200 logits) or -Sketch (1000)."""
    [score] = scores
    metrics = {k: score[k] for k in ('top1', 'top5')}
    table = format_table(['set', 'images', 'top-1', 'top-5'], [[
        plan['kind'], score['num_images'], f'{metrics["top1"]:.2f}',
        f'{metrics["top5"]:.2f}'
    ]],
                         align=['<', '>', '>', '>'],
                         notes=plan['notes'])
    return dict(
        metrics=metrics,
        table=table,
        source=dict(num_classes=len(class_folders(plan['root']))))


def format_errors(errors: Dict[str, Dict[int, float]],
                  metrics: Dict[str, float], notes: List[str]) -> str:
    severities = sorted({s for table in errors.values() for s in table})
    rows = []
    for corruption, table in errors.items():
        ce = metrics.get(f'CE/{corruption}')
        rows.append([corruption] + [
            f'{100 * table[s]:.2f}' if s in table else None for s in severities
        ] + [
            f'{100 * np.mean(list(table.values())):.2f}',
            None if ce is None else f'{100 * ce:.2f}'
        ])
    rows.append(['mean'] + [None] * len(severities) + [
        f'{metrics["mean_error"]:.2f}', f'{metrics["mCE"]:.2f}' if 'mCE' in
        metrics else None
    ])
    return format_table(
        ['corruption'] + [f'err s{s}'
                          for s in severities] + ['err mean', 'CE'],
        rows,
        align=['<'] + ['>'] * (len(severities) + 2),
        notes=notes)


def main(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Evaluate on every set given; return kind -> metrics."""
    chosen = {s: getattr(args, s) for s in SETS if getattr(args, s)}
    if not chosen:
        raise LayoutError('nothing to evaluate: give at least one of '
                          '--imagenet-c, --imagenet-a, --imagenet-r, '
                          '--imagenet-sketch, --corrupted')
    if args.reference and not ({'imagenet_c', 'corrupted'} & set(chosen)):
        raise LayoutError('--reference applies to --imagenet-c / '
                          '--corrupted only')
    if args.imagenet_c and args.corrupted and args.reference:
        raise LayoutError('--reference would normalise both --imagenet-c '
                          'and --corrupted; evaluate them in two runs')
    cfg = load_config(args.config, args.cfg_options, 'none', args.work_dir)
    test_loader = cfg.get('test_dataloader') or {}
    if args.batch_size is None:
        args.batch_size = test_loader.get('batch_size', 64)
    if args.num_workers is None:
        args.num_workers = test_loader.get('num_workers', 2)

    # every layout is checked before the model is built
    plans = []
    for key, root in chosen.items():
        if key in ('imagenet_c', 'corrupted'):
            kind = 'corruption' if key == 'corrupted' else key
            plans.append(prepare_corruptions(cfg, args, kind, root))
        else:
            plans.append(prepare_imagenet_variant(cfg, key, root))
    model = build_classifier(cfg, args.checkpoint, args.device)
    pretrain = pretrain_entry(cfg, args.checkpoint, args.pretrain_name)

    results = {}
    for plan in plans:
        kind = plan['kind']
        scores = evaluate(model, plan['datasets'], plan['targets'],
                          args.batch_size, args.num_workers, plan['mask'],
                          plan['num_classes'])
        if kind in ('imagenet_c', 'corruption'):
            out = corruption_result(plan, scores, args.reference)
        else:
            out = variant_result(plan, scores)
        path = write_result(
            cfg.work_dir,
            kind,
            out['metrics'],
            pretrain,
            source=dict(
                out['source'],
                config=args.config,
                checkpoint=args.checkpoint,
                dataset=osp.abspath(plan['root']),
                pipeline=describe(plan['pipeline']),
                num_images=sum(s['num_images'] for s in scores)))
        print(
            f'\n{kind} of {args.checkpoint} ({pretrain["name"]}):\n'
            f'{out["table"]}\nwritten to {path}',
            flush=True)
        results[kind] = out['metrics']
    return results


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (CheckpointLoadError, CheckpointMismatchError, ConfigError,
            FileNotFoundError, LayoutError, ResultFileError) as e:
        raise SystemExit(f'error: {e}')
