"""Weighted k-NN classification of a pretrained backbone: DINO's protocol.

    python tools/benchmarks/knn_eval.py CONFIG [CHECKPOINT]
        [--dataset {imagenet,shapes_cls,FILE.py}] [--data-root DIR]
        [--nb-knn 10 20 100 200] [--temperature 0.07] [--part teacher]
        [--dump-features DIR | --load-features DIR] [--work-dir DIR]
        [--pretrain-name NAME] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

CONFIG is any config with ``model.backbone``: a DINO pretraining config of
``configs/dino/`` or an mmpretrain classifier config. CHECKPOINT is a
bcssl_mm DINO checkpoint (its teacher backbone, or ``--part student``), an
extracted backbone (tools/model_converters/extract_backbone.py), a
classifier checkpoint or a bare backbone state dict; without it the
backbone keeps its random initialisation (a baseline: name it with
``--pretrain-name``).

The labelled data is ``knn_data`` (a bank, the queries and the
normalisation) of a dataset config: ``--dataset imagenet``
(configs/_base_/datasets/imagenet_knn.py, the default unless CONFIG has a
``knn_data`` of its own), ``--dataset shapes_cls``
(configs/_base_/datasets/shapes_cls_knn.py, the demo) or the path of any
file defining ``knn_data``; any folder of class sub-folders works through
``CustomDataset``. ``--data-root`` replaces the data root of both splits.

Prints top-1 / top-5 for every k and writes ``<work-dir>/knn.result.json``
(``top1_k{K}``, ``top5_k{K}``; default work dir
``work_dirs/<config name>/knn``). ``--dump-features DIR`` saves the pooled
features (``train.pt`` = bank, ``val.pt`` = queries; the format is in
:mod:`bcssl_mm.evaluation.features`), which ``--load-features DIR`` and the
linear probe's fast path reuse without running the backbone.

Multi-process (each process extracts its shard; gloo on CPU):
``tools/dist_knn_eval.sh CONFIG CHECKPOINT NPROC [args]``.
"""
import argparse
import os
import os.path as osp
import time
from typing import Any, Dict

import torch
from mmengine import dist
from mmengine.config import Config
from mmengine.registry import init_default_scope

from bcssl_mm.analysis import format_table
from bcssl_mm.evaluation.features import (FeatureCacheError, build_dataset,
                                          build_eval_backbone,
                                          build_preprocessor, dataset_labels,
                                          extract_features, load_feature_cache,
                                          plain, save_features)
from bcssl_mm.evaluation.knn import DEFAULT_KS, TEMPERATURE, knn_classify
from bcssl_mm.evaluation.results import (parse_pretrain_name,
                                         pretrain_from_checkpoint,
                                         write_result)
from bcssl_mm.models.utils import CheckpointMismatchError
from bcssl_mm.utils import (CheckpointLoadError, setup_cpu_distributed,
                            teardown_distributed)
from bcssl_mm.utils.config_check import (ConfigError, add_runner_args,
                                         check_cfg_options, load_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASETS = {
    'imagenet': osp.join(ROOT, 'configs/_base_/datasets/imagenet_knn.py'),
    'shapes_cls': osp.join(ROOT, 'configs/_base_/datasets/shapes_cls_knn.py'),
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Weighted k-NN classification of a pretrained backbone '
        '(DINO protocol)')
    parser.add_argument('config', help='config with model.backbone')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='DINO checkpoint, extracted backbone or backbone state dict; '
        'none: random initialisation')
    parser.add_argument(
        '--part',
        choices=['teacher', 'student'],
        default='teacher',
        help='backbone of a DINO checkpoint (default: teacher)')
    parser.add_argument(
        '--dataset',
        help='imagenet, shapes_cls or a dataset config file defining '
        'knn_data (default: the config\'s knn_data, else imagenet)')
    parser.add_argument(
        '--data-root', help='data root of the bank and the queries')
    parser.add_argument(
        '--nb-knn',
        type=int,
        nargs='+',
        default=list(DEFAULT_KS),
        help='numbers of neighbours (default: 10 20 100 200)')
    parser.add_argument(
        '--temperature',
        type=float,
        default=TEMPERATURE,
        help='vote temperature T of exp(sim / T) (default: 0.07)')
    parser.add_argument(
        '--batch-size', type=int, default=64, help='images per forward')
    parser.add_argument(
        '--num-workers', type=int, default=4, help='data-loading processes')
    parser.add_argument(
        '--query-chunk', type=int, default=1024, help='k-NN queries per block')
    parser.add_argument(
        '--bank-chunk',
        type=int,
        default=65536,
        help='k-NN bank items per block')
    parser.add_argument(
        '--dump-features', metavar='DIR', help='save the features here')
    parser.add_argument(
        '--load-features',
        metavar='DIR',
        help='use the features saved here; the backbone is not run')
    parser.add_argument(
        '--pretrain-name',
        help='name of the pretraining run in the result (default: from the '
        'checkpoint), e.g. random_bcssl-atto-k9_init_shapes')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the initialisation without a checkpoint')
    parser.add_argument(
        '--work-dir',
        help='where knn.result.json goes; default work_dirs/<config '
        'name>/knn')
    add_runner_args(
        parser, 'override config keys, e.g. knn_data.bank.data_prefix=train/')
    return parser


def build_cfg(args: argparse.Namespace) -> Config:
    """The config, its ``knn_data`` from ``--dataset`` and the overrides."""
    cfg = load_config(args.config, None, args.launcher, args.work_dir)
    if args.work_dir is None:
        cfg.work_dir = osp.join(cfg.work_dir, 'knn')
    dataset = args.dataset
    if dataset is None and 'knn_data' not in cfg:
        dataset = 'imagenet'
    if dataset is not None:
        path = DATASETS.get(dataset, dataset)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'--dataset {dataset!r}: neither one of {sorted(DATASETS)} '
                'nor a dataset config file')
        data_cfg = Config.fromfile(path)
        if 'knn_data' not in data_cfg:
            raise ConfigError(f'{path}: defines no knn_data')
        cfg.knn_data = data_cfg.knn_data
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    for split in ('bank', 'query'):
        if split not in cfg.knn_data:
            raise ConfigError(f'{args.config}: knn_data has no {split!r}')
        if args.data_root is not None:
            cfg.knn_data[split].data_root = args.data_root
        root = cfg.knn_data[split].get('data_root')
        if root and not osp.isdir(root):
            key = '--data-root' if args.data_root else \
                f'knn_data.{split}.data_root'
            raise FileNotFoundError(
                f'k-NN data root {root!r} ({key}) does not exist')
    return cfg


def init_distributed(cfg: Config, launcher: str) -> None:
    """Process group of a multi-process run: NCCL on GPUs, gloo on CPU."""
    if launcher == 'none':
        return
    if torch.cuda.is_available():
        dist.init_dist(launcher)
    else:
        setup_cpu_distributed(cfg, launcher)


def extract_splits(args: argparse.Namespace,
                   cfg: Config) -> Dict[str, Dict[str, Any]]:
    """Bank ('train') and query ('val') features, labels and classes."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    datasets = {
        'train': build_dataset(cfg.knn_data.bank),
        'val': build_dataset(cfg.knn_data.query)
    }
    classes = {s: dataset_labels(d)[1] for s, d in datasets.items()}
    if classes['train'] != classes['val']:
        raise ValueError(
            f'the query classes {classes["val"]} differ from the bank '
            f'classes {classes["train"]}: labels would not match')
    if max(args.nb_knn) > len(datasets['train']):
        raise ValueError(f'--nb-knn {max(args.nb_knn)} is larger than the '
                         f'bank ({len(datasets["train"])} images)')
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    backbone = build_eval_backbone(cfg.model, args.checkpoint, args.part,
                                   args.seed).to(device)
    preprocessor = build_preprocessor(cfg.knn_data.get('preprocessor', {}))
    pretrain = pretrain_from_checkpoint(args.checkpoint, args.pretrain_name)
    splits = {}
    for split, dataset in datasets.items():
        start = time.perf_counter()
        feats = extract_features(backbone, dataset, preprocessor,
                                 args.batch_size, args.num_workers, device)
        labels, classes = dataset_labels(dataset)
        data = cfg.knn_data['bank' if split == 'train' else 'query']
        meta = dict(
            config=args.config,
            checkpoint=args.checkpoint,
            part=args.part,
            pretrain=pretrain,
            dataset=plain(data.to_dict()),
            preprocessor=plain(cfg.knn_data.get('preprocessor', {})))
        splits[split] = dict(
            features=feats.cpu(), labels=labels, classes=classes, meta=meta)
        if dist.is_main_process():
            print(f'{split}: {feats.shape[0]} x {feats.shape[1]} features in '
                  f'{time.perf_counter() - start:.1f} s')
    return splits


def main(args: argparse.Namespace) -> Dict[str, float]:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.dump_features and args.load_features:
        raise ValueError('give --dump-features or --load-features, not both')
    if args.load_features:
        cfg = load_config(args.config, None, 'none', args.work_dir)
        if args.work_dir is None:
            cfg.work_dir = osp.join(cfg.work_dir, 'knn')
        splits = load_feature_cache(args.load_features)
        pretrain = splits['train']['meta'].get('pretrain')
        if args.pretrain_name:
            pretrain = parse_pretrain_name(args.pretrain_name)
        elif not isinstance(pretrain, dict) or 'name' not in pretrain:
            raise FeatureCacheError(
                f"{osp.join(args.load_features, 'train.pt')}: meta has no "
                "'pretrain' with a 'name'; give --pretrain-name")
    else:
        cfg = build_cfg(args)
        init_distributed(cfg, args.launcher)
        splits = extract_splits(args, cfg)
        pretrain = splits['train']['meta']['pretrain']
    metrics: Dict[str, float] = {}
    if dist.is_main_process():
        if args.dump_features:
            for split, data in splits.items():
                path = osp.join(args.dump_features, f'{split}.pt')
                save_features(path, **data)
                print(f'saved {path}')
        train, val = splits['train'], splits['val']
        metrics = knn_classify(
            train['features'],
            train['labels'],
            val['features'],
            val['labels'],
            len(train['classes']),
            ks=args.nb_knn,
            temperature=args.temperature,
            query_chunk=args.query_chunk,
            bank_chunk=args.bank_chunk)
        ks = sorted(set(args.nb_knn))
        print(
            format_table(['k', 'top-1 (%)', 'top-5 (%)'], [[
                k, f'{metrics[f"top1_k{k}"]:.2f}',
                f'{metrics[f"top5_k{k}"]:.2f}'
            ] for k in ks],
                         align='>',
                         notes=[
                             f'pretrain: {pretrain["name"]}; bank '
                             f'{len(train["labels"])}, queries '
                             f'{len(val["labels"])}, '
                             f'{len(train["classes"])} classes, '
                             f'T={args.temperature}'
                         ]))
        source = dict(
            config=args.config,
            checkpoint=args.checkpoint,
            part=args.part,
            features=args.load_features,
            dataset=(train['meta'].get('dataset') or {}).get('data_root'),
            temperature=args.temperature)
        path = write_result(cfg.work_dir, 'knn', metrics, pretrain, source)
        print(f'wrote {path}')
    teardown_distributed()
    return metrics


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (CheckpointLoadError, CheckpointMismatchError, ConfigError,
            FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}')
