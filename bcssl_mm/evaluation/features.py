"""Pooled backbone features of a labelled dataset, and their cache.

Shared by the k-NN tool (``tools/benchmarks/knn_eval.py``), the k-NN
monitor (:class:`bcssl_mm.engine.KNNMonitorHook`) and the linear probe's
cached-feature fast path:

- :func:`build_eval_backbone`: the backbone of any config with
  ``model.backbone`` (a DINO pretraining config, an mmpretrain classifier),
  ready for evaluation (no stochastic depth, plain BN, eval mode), with the
  weights of a DINO checkpoint (teacher by default), an extracted backbone
  or a bare backbone state dict, loaded strictly;
- :func:`extract_features`: features in dataset order, each process
  extracting its shard under ``torch.distributed``;
- :func:`save_features` / :func:`load_features`: the feature cache, a
  directory with ``train.pt`` (the bank) and ``val.pt`` (the queries), each
  ``{'features': float32 (N, C), 'labels': int64 (N, ), 'classes': [str],
  'meta': dict}``, rows in dataset order, features as the backbone pools
  them (not L2-normalised), readable with ``torch.load(weights_only=True)``.
"""
import copy
import json
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.registry import DATASETS, MODELS

from bcssl_mm.models.utils import (extract_state_dict, load_state_dict_strict,
                                   pool_backbone_output)
from bcssl_mm.utils.torch_load import CheckpointLoadError, load_from_local

# where each part's backbone lives in a bcssl_mm DINO checkpoint
PART_PREFIXES = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}
CACHE_SPLITS = ('train', 'val')
CACHE_KEYS = ('features', 'labels', 'classes', 'meta')


class FeatureCacheError(ValueError):
    """A feature cache file that cannot be used; the message names the file
    and the key at fault."""


def backbone_prefix(state_dict: Dict[str, Any], part: str = 'teacher') -> str:
    """The key prefix of the backbone in ``state_dict``.

    A DINO checkpoint holds both parts (``teacher.backbone.*``,
    ``backbone.*``); an extracted backbone or a classifier checkpoint holds
    ``backbone.*``; a bare backbone state dict has no prefix.
    """
    if part not in PART_PREFIXES:
        raise ValueError(
            f'part {part!r} is not one of {sorted(PART_PREFIXES)}')
    for prefix in (PART_PREFIXES[part], 'backbone.'):
        if any(k.startswith(prefix) for k in state_dict):
            return prefix
    return ''


def build_eval_backbone(model_cfg: dict,
                        checkpoint: Optional[str] = None,
                        part: str = 'teacher',
                        seed: int = 0) -> nn.Module:
    """The backbone of ``model_cfg``, in eval mode, with ``checkpoint``.

    Stochastic depth is off (``drop_path_rate=0``) and SyncBN is reverted to
    BN. Without a checkpoint the backbone keeps its own initialisation
    (``init_weights``, from ``seed``): the random-init baseline.

    Args:
        model_cfg (dict): ``cfg.model`` of any config with a ``backbone``.
        checkpoint (str, optional): A bcssl_mm DINO checkpoint (the
            ``part`` backbone is taken), an extracted backbone
            (``backbone.*``, tools/model_converters/extract_backbone.py),
            a classifier checkpoint, or a bare backbone state dict.
        part (str): 'teacher' (DINO evaluates it) or 'student'.
        seed (int): Seed of the initialisation. Defaults to 0.

    Raises:
        ValueError: ``model_cfg`` has no backbone.
        CheckpointMismatchError: The checkpoint's keys or shapes do not
            match; the message lists them.
    """
    if 'backbone' not in model_cfg:
        raise ValueError('the config has no model.backbone to evaluate')
    cfg = copy.deepcopy(dict(model_cfg['backbone']))
    if 'drop_path_rate' in cfg:
        cfg['drop_path_rate'] = 0.
    if checkpoint is not None:
        cfg['init_cfg'] = None  # the checkpoint replaces any Pretrained
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = MODELS.build(cfg)
        if checkpoint is None:
            # NOTE: mmengine's init_weights logs every parameter at INFO
            logger = MMLogger.get_current_instance()
            level = logger.level
            logger.setLevel(logging.WARNING)
            try:
                backbone.init_weights()
            finally:
                logger.setLevel(level)
    backbone = revert_sync_batchnorm(backbone)
    if checkpoint is not None:
        state_dict = extract_state_dict(
            load_from_local(checkpoint, map_location='cpu'))
        if not isinstance(state_dict, dict):
            raise ValueError(f'{checkpoint}: not a state dict')
        load_state_dict_strict(
            backbone,
            state_dict,
            checkpoint,
            prefix=backbone_prefix(state_dict, part))
    # NOTE: mmpretrain's BaseBackbone.train returns None (ViT, ResNet), so
    # ``backbone.eval()`` is not chained
    backbone.eval()
    return backbone


def shard_range(num: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Contiguous [start, end) of ``rank``'s share of ``num`` items; shares
    differ by at most one item."""
    return num * rank // world_size, num * (rank + 1) // world_size


def build_preprocessor(cfg: dict) -> ClsDataPreprocessor:
    """Batching and normalisation of packed images (``mean``, ``std``,
    ``to_rgb`` of the dataset config)."""
    cfg = {k: v for k, v in dict(cfg).items() if k != 'type'}
    return ClsDataPreprocessor(**cfg)


@torch.no_grad()
def extract_features(backbone: nn.Module,
                     dataset: Any,
                     preprocessor: nn.Module,
                     batch_size: int = 64,
                     num_workers: int = 0,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """Pooled features of every item of ``dataset``, in dataset order.

    Under ``torch.distributed`` each process extracts a contiguous shard
    (:func:`shard_range`) and the shards are gathered, so every process
    returns the whole (N, C), without padding duplicates. The backbone is
    run in eval mode, then each of its modules is put back in the mode it
    had.

    Args:
        backbone (nn.Module): Outputs pooled by
            :func:`~bcssl_mm.models.utils.pool_backbone_output`.
        dataset: An mmengine dataset whose items are packed images
            (``PackInputs``).
        preprocessor (nn.Module): Batches and normalises the packed images.
        batch_size (int): Images per forward. Defaults to 64.
        num_workers (int): Data-loading processes. Defaults to 0.
        device (torch.device, optional): Where to run; defaults to the
            backbone's device.

    Returns:
        Tensor: (N, C) float32, on ``device``.
    """
    if len(dataset) == 0:
        raise ValueError(f'{type(dataset).__name__} at '
                         f'{getattr(dataset, "data_root", "?")!r} is empty')
    if device is None:
        device = next(backbone.parameters()).device
    rank, world_size = dist.get_rank(), dist.get_world_size()
    start, end = shard_range(len(dataset), rank, world_size)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(start, end)),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        collate_fn=pseudo_collate)
    preprocessor = preprocessor.to(device)
    modes = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        feats = [
            pool_backbone_output(
                backbone(preprocessor(batch, False)['inputs'])).float()
            for batch in loader
        ]
    finally:
        for module, training in modes:
            module.training = training
    shard = torch.cat(feats) if feats else None
    if world_size == 1:
        return shard
    # the shards differ in length by one at most: pad to the longest, gather,
    # then trim each shard back to its own length
    info = torch.tensor([end - start, -1 if shard is None else shard.shape[1]],
                        device=device)
    infos = torch.stack(dist.all_gather(info)).cpu()
    dim = int(infos[:, 1].max())
    longest = int(infos[:, 0].max())
    padded = torch.zeros((longest, dim), device=device)
    if shard is not None:
        padded[:shard.shape[0]] = shard
    gathered = dist.all_gather(padded)
    return torch.cat([g[:int(n)]
                      for g, n in zip(gathered, infos[:, 0])]).to(device)


def build_dataset(cfg: dict) -> Any:
    """An mmpretrain dataset from its config (``ImageNet``,
    ``CustomDataset``...)."""
    return DATASETS.build(copy.deepcopy(cfg))


def dataset_labels(dataset: Any) -> Tuple[torch.Tensor, List[str]]:
    """(N, ) int64 labels in dataset order and the class names."""
    labels = torch.as_tensor(dataset.get_gt_labels(), dtype=torch.long)
    classes = [str(c) for c in (dataset.metainfo.get('classes') or [])]
    if not classes:
        raise ValueError(f'{type(dataset).__name__} has no classes: a k-NN '
                         'bank needs a labelled dataset')
    return labels, classes


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON types (ConfigDict and tuples are not admitted
    by ``torch.load(weights_only=True)``)."""
    return json.loads(json.dumps(obj, default=str))


def save_features(path: str, features: torch.Tensor, labels: torch.Tensor,
                  classes: Sequence[str], meta: Dict[str, Any]) -> None:
    """Write one split of the cache (``train.pt`` / ``val.pt``) atomically.
    """
    record = dict(
        features=features.detach().float().cpu().contiguous(),
        labels=labels.detach().long().cpu().contiguous(),
        classes=[str(c) for c in classes],
        meta=plain(meta))
    check_features(record, path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp.{os.getpid()}'
    torch.save(record, tmp)
    os.replace(tmp, path)


def check_features(record: Any, path: str) -> Dict[str, Any]:
    """Check one cache split; errors name ``path`` and the key at fault."""
    if not isinstance(record, dict):
        raise FeatureCacheError(
            f'{path}: expected a dict with keys {list(CACHE_KEYS)}, got '
            f'{type(record).__name__}')
    missing = [k for k in CACHE_KEYS if k not in record]
    if missing:
        raise FeatureCacheError(f'{path}: missing key(s) {missing}')
    feats, labels, classes = (record['features'], record['labels'],
                              record['classes'])
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or \
            feats.dtype != torch.float32:
        raise FeatureCacheError(
            f"{path}: key 'features' must be a float32 tensor (N, C), got "
            f'{getattr(feats, "dtype", type(feats).__name__)} '
            f'{tuple(getattr(feats, "shape", ()))}')
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long \
            or labels.shape != (feats.shape[0], ):
        raise FeatureCacheError(
            f"{path}: key 'labels' must be an int64 tensor ({feats.shape[0]},"
            f') like the features, got '
            f'{getattr(labels, "dtype", type(labels).__name__)} '
            f'{tuple(getattr(labels, "shape", ()))}')
    if not isinstance(classes, list) or not classes or not all(
            isinstance(c, str) for c in classes):
        raise FeatureCacheError(
            f"{path}: key 'classes' must be a non-empty list of str")
    if labels.numel() and (int(labels.min()) < 0
                           or int(labels.max()) >= len(classes)):
        raise FeatureCacheError(
            f"{path}: key 'labels' has values outside [0, {len(classes)})")
    if not isinstance(record['meta'], dict):
        raise FeatureCacheError(f"{path}: key 'meta' must be a dict")
    if not torch.isfinite(feats).all():
        raise FeatureCacheError(f"{path}: key 'features' is not finite")
    return record


def load_features(path: str) -> Dict[str, Any]:
    """Read and check one cache split (``train.pt`` or ``val.pt``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path}: no such feature file (write the cache with the k-NN '
            "tool's --dump-features DIR)")
    try:
        record = load_from_local(path, map_location='cpu')
    except CheckpointLoadError as e:
        raise FeatureCacheError(f'{path}: not a readable feature file ({e})')
    return check_features(record, path)


def load_feature_cache(directory: str) -> Dict[str, Dict[str, Any]]:
    """Both splits of a cache directory, checked against each other."""
    splits = {
        s: load_features(osp.join(directory, f'{s}.pt'))
        for s in CACHE_SPLITS
    }
    train, val = splits['train'], splits['val']
    path = osp.join(directory, 'val.pt')
    if val['features'].shape[1] != train['features'].shape[1]:
        raise FeatureCacheError(
            f"{path}: key 'features' has {val['features'].shape[1]} "
            f"dimensions, train.pt {train['features'].shape[1]}")
    if val['classes'] != train['classes']:
        raise FeatureCacheError(
            f"{path}: key 'classes' differs from train.pt's")
    return splits
