"""One file format for every evaluation result of the toolkit.

Each evaluation tool (k-NN, linear probe, robustness, COCO) writes one JSON
file per run, ``<work_dir>/<kind>.result.json``, and
``tools/analysis_tools/collect_results.py`` reads every such file under a
root (``work_dirs/`` by default) to print the paper's tables. The file says
*what* was evaluated (the pretraining run, parsed from its config name),
*which* numbers came out, and *where from* (config, checkpoint, dataset)::

    {
      "schema": 1,
      "kind": "knn",
      "pretrain": {"name": "dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k",
                   "method": "dino", "backbone": "bcssl-t-k9",
                   "epochs": 100, "data": "in1k", "checkpoint_epoch": 100},
      "metrics": {"top1_k20": 70.3, "top5_k20": 87.1, ...},
      "source": {"config": ..., "checkpoint": ..., "dataset": ...,
                 "time": "2026-11-24T06:30:00"}
    }

Metric keys of each kind (percentages, except ``mCE`` which is the paper's
x100 number, and ``error/*`` / ``CE/*`` which are fractions):

- ``knn``: ``top1_k{K}`` and ``top5_k{K}`` for every K evaluated;
- ``linear`` (the full protocol) and ``linear_features`` (the cached-feature
  fast path): ``top1``, ``top5`` (last epoch), ``best_top1``,
  ``best_top5``;
- ``imagenet_c`` (or ``corruption`` for a generated corrupted set that is not
  ImageNet-C): ``mCE``, ``CE/<corruption>``, ``error/<corruption>/<s>``,
  and ``mean_error``;
- ``imagenet_a``, ``imagenet_r``, ``imagenet_sketch``: ``top1``, ``top5``;
- ``coco``: mmdet's ``coco/bbox_mAP``, ``coco/bbox_mAP_50``, ... as
  ``tools/test.py`` prints them.

The pretraining run is named by its config file's stem, which follows
mmpretrain's naming, ``{method}_{backbone}_{setting}_{data}``, with the
pretraining epochs in the setting (``...-100e``). Tools take it from the
``experiment_name`` that mmengine stores in checkpoints (and that
``extract_backbone.py`` keeps), or from ``--pretrain-name``.
"""
import datetime
import glob
import json
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional

SCHEMA = 1
RESULT_SUFFIX = '.result.json'
KINDS = ('knn', 'linear', 'linear_features', 'imagenet_c', 'corruption',
         'imagenet_a', 'imagenet_r', 'imagenet_sketch', 'coco')

# {method}_{backbone}_{setting}_{data}; the setting holds the epochs
_NAME_RE = re.compile(r'^(?P<method>[a-z0-9]+(?:-[a-z0-9]+)*)_'
                      r'(?P<backbone>[^_]+)_(?P<setting>[^_]+)_'
                      r'(?P<data>[^_]+)$')
_EPOCHS_RE = re.compile(r'(?:^|-)(\d+)e(?:-|$)')
# mmengine's experiment_name = f'{config stem}_{%Y%m%d_%H%M%S}'
_TIMESTAMP_RE = re.compile(r'_\d{8}_\d{6}$')


class ResultFileError(ValueError):
    """A result file that cannot be read; the message names the file."""


def parse_pretrain_name(name: str) -> Dict[str, Any]:
    """Split a pretraining config stem (or experiment name) into its parts.

    ``'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k'`` gives
    ``{'name': ..., 'method': 'dino', 'backbone': 'bcssl-t-k9',
    'epochs': 100, 'data': 'in1k'}``. A trailing mmengine timestamp
    (``_20261124_063000``) and a ``.py`` suffix are dropped. A name that does
    not follow the convention gives ``{'name': name}`` only, so that its
    results are still collected (as rows of their own).
    """
    name = _TIMESTAMP_RE.sub('', osp.basename(name))
    if name.endswith('.py'):
        name = name[:-3]
    out: Dict[str, Any] = {'name': name}
    match = _NAME_RE.match(name)
    if match is None:
        return out
    out.update(
        method=match['method'], backbone=match['backbone'], data=match['data'])
    epochs = _EPOCHS_RE.search(match['setting'])
    if epochs is not None:
        out['epochs'] = int(epochs.group(1))
    return out


def pretrain_from_checkpoint(checkpoint: Optional[str],
                             override: Optional[str] = None) -> Dict[str, Any]:
    """The ``pretrain`` entry of a result, for a backbone checkpoint.

    ``override`` (a tool's ``--pretrain-name``) wins. Otherwise the
    checkpoint's ``meta.experiment_name`` names the run and
    ``meta.epoch`` is kept as ``checkpoint_epoch``; a checkpoint without
    them is named by its file name.
    """
    meta: Dict[str, Any] = {}
    if checkpoint is not None and osp.isfile(checkpoint):
        from bcssl_mm.utils.torch_load import load_from_local
        ckpt = load_from_local(checkpoint, map_location='cpu')
        if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict):
            meta = ckpt['meta']
    if override:
        out = parse_pretrain_name(override)
    elif meta.get('experiment_name'):
        out = parse_pretrain_name(str(meta['experiment_name']))
    elif checkpoint is not None:
        out = parse_pretrain_name(osp.splitext(osp.basename(checkpoint))[0])
    else:
        out = {'name': 'random-init'}
    if isinstance(meta.get('epoch'), int):
        out['checkpoint_epoch'] = meta['epoch']
    return out


def backbone_init_checkpoint(cfg: Any) -> Optional[str]:
    """The checkpoint of ``model.backbone.init_cfg`` when it is (or lists) a
    ``Pretrained`` init, else None (a backbone initialised at random).

    The linear probe's result hook, ``tools/test.py`` and the robustness tool
    name the pretraining run of a fine-tuned model by this checkpoint.
    """
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg')
    for item in init_cfg if isinstance(init_cfg, list) else [init_cfg]:
        if isinstance(item, dict) and item.get('type') == 'Pretrained':
            return item.get('checkpoint')
    return None


def result_path(work_dir: str, kind: str) -> str:
    return osp.join(work_dir, f'{kind}{RESULT_SUFFIX}')


def write_result(work_dir: str,
                 kind: str,
                 metrics: Dict[str, float],
                 pretrain: Dict[str, Any],
                 source: Optional[Dict[str, Any]] = None) -> str:
    """Write ``<work_dir>/<kind>.result.json`` atomically; return its path.

    The file is written next to its final name and renamed over it, so an
    interrupted write leaves the previous result intact.
    """
    if kind not in KINDS:
        raise ValueError(f'unknown result kind {kind!r}; one of {KINDS}')
    bad = {
        k: v
        for k, v in metrics.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool)
    }
    if bad:
        raise ValueError(f'{kind} result: metrics must be numbers, got {bad}')
    record = dict(
        schema=SCHEMA,
        kind=kind,
        pretrain=dict(pretrain),
        metrics={k: float(v)
                 for k, v in metrics.items()},
        source=dict(
            source or {},
            time=datetime.datetime.now().isoformat(timespec='seconds')))
    os.makedirs(work_dir, exist_ok=True)
    path = result_path(work_dir, kind)
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)
    return path


def read_result(path: str) -> Dict[str, Any]:
    """Read and check one result file; errors name the file and the key."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ResultFileError(f'{path}: not a readable JSON file ({e})')
    if not isinstance(record, dict):
        raise ResultFileError(f'{path}: expected a JSON object')
    if record.get('schema') != SCHEMA:
        raise ResultFileError(f'{path}: schema {record.get("schema")!r}, '
                              f'this toolkit reads schema {SCHEMA}')
    if record.get('kind') not in KINDS:
        raise ResultFileError(f'{path}: unknown kind {record.get("kind")!r}')
    for key in ('pretrain', 'metrics'):
        if not isinstance(record.get(key), dict):
            raise ResultFileError(f'{path}: key {key!r} must be an object')
    if 'name' not in record['pretrain']:
        raise ResultFileError(f'{path}: pretrain has no "name"')
    record['path'] = path
    return record


def read_results(root: str) -> List[Dict[str, Any]]:
    """Every ``*.result.json`` under ``root``, sorted by path."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'{root}: no such results directory')
    paths = sorted(
        glob.glob(osp.join(root, '**', f'*{RESULT_SUFFIX}'), recursive=True))
    return [read_result(p) for p in paths]
