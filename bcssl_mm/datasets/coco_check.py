"""Validate COCO annotation files once, before a run starts.

mmdet's ``CocoDataset`` trains on what it is given: an unknown
``category_id``, a box of negative width or a polygon of two points pass
without a word, and the polygon later crashes evaluation inside pycocotools
(``Argument 'bb' has incorrect type``). A file without annotations fails
with ``need at least one array to concatenate``, malformed JSON with a
``JSONDecodeError`` that does not name the file. :func:`check_coco_file`
reads a file once and names the file, annotation id and image of the first
problem; :func:`check_config_annotations` runs it on every COCO file a
config's dataloaders and evaluators read.
"""
import json
import math
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional

from mmengine.config import Config


class AnnotationError(ValueError):
    """A COCO annotation file that a run cannot use correctly."""


def _image_name(images: Dict[Any, dict], image_id: Any) -> str:
    image = images.get(image_id)
    name = image.get('file_name', '?') if image else 'not in images'
    return f'image {image_id!r} ({name})'


def _check_segmentation(seg: Any) -> Optional[str]:
    if isinstance(seg, dict):  # RLE
        if 'counts' not in seg or 'size' not in seg:
            return 'an RLE segmentation needs "counts" and "size"'
        return None
    if not isinstance(seg, list):
        return f'segmentation is a {type(seg).__name__}, not a list or RLE'
    for i, poly in enumerate(seg):
        if not isinstance(poly, list) or len(poly) % 2:
            return f'polygon {i} is not a flat list of x, y pairs'
        if len(poly) < 6:
            return (f'polygon {i} has {len(poly) // 2} point(s); a polygon '
                    'needs at least 3')
    return None


def _check_annotation(ann: dict, categories: set) -> Optional[str]:
    if ann.get('category_id') not in categories:
        return (f'category_id {ann.get("category_id")!r} is not one of the '
                f'file\'s categories {sorted(categories)}')
    bbox = ann.get('bbox')
    if bbox is not None:
        if (not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, (int, float)) and math.isfinite(v)
                for v in bbox)):
            return f'bbox {bbox!r} is not 4 finite numbers [x, y, w, h]'
        if bbox[2] < 0 or bbox[3] < 0:
            return f'bbox {bbox!r} has a negative width or height'
    if 'segmentation' in ann:
        return _check_segmentation(ann['segmentation'])
    return None


def check_coco_file(ann_file: str, require_annotations: bool = True) -> dict:
    """Read and validate one COCO instances file.

    Args:
        ann_file (str): Path of the JSON file.
        require_annotations (bool): Refuse a file without annotations (a
            test-dev style file, images only, is fine for ``format_only``
            runs). Defaults to True.

    Returns:
        dict: Counts of ``images``, ``annotations`` and ``categories``.

    Raises:
        FileNotFoundError: The file does not exist.
        AnnotationError: Names the file, and the annotation id and image of
            the first bad annotation.
    """
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
    try:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f'{ann_file}: not valid JSON (line {e.lineno}, column {e.colno}: '
            f'{e.msg})') from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f'{ann_file}: not UTF-8 text ({e})') from None
    if not isinstance(data, dict):
        raise AnnotationError(
            f'{ann_file}: a COCO file is a JSON object, not a '
            f'{type(data).__name__}')
    for key in ('images', 'categories'):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f'{ann_file}: no "{key}" list')
    annotations = data.get('annotations') or []
    if require_annotations and not annotations:
        raise AnnotationError(
            f'{ann_file}: no annotations (an empty ground truth: training '
            'has nothing to learn and COCO evaluation reports -1 "no data")')
    images = {img.get('id'): img for img in data['images']}
    categories = {cat.get('id') for cat in data['categories']}
    for ann in annotations:
        image_id = ann.get('image_id')
        where = (f'{ann_file}: annotation id {ann.get("id")!r} of '
                 f'{_image_name(images, image_id)}')
        if image_id not in images:
            raise AnnotationError(f'{where}: image_id is not in "images"')
        problem = _check_annotation(ann, categories)
        if problem:
            raise AnnotationError(f'{where}: {problem}')
    return dict(
        images=len(images),
        annotations=len(annotations),
        categories=len(categories))


def _datasets(dataset: Any) -> Iterator[dict]:
    """A dataset config and the ones it wraps (Concat/Repeat/ClassBalanced).
    """
    if isinstance(dataset, dict):
        yield dataset
        inner = dataset.get('dataset')
        if inner is not None:
            yield from _datasets(inner)
        for inner in dataset.get('datasets') or []:
            yield from _datasets(inner)


def _coco_files(cfg: Config) -> List[tuple]:
    """(where, path, require_annotations) of every COCO file ``cfg`` reads.
    """
    files = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        evaluator = cfg.get(f'{split}_evaluator') or {}
        format_only = any(
            e.get('format_only', False) for e in (
                evaluator if isinstance(evaluator, list) else [evaluator])
            if isinstance(e, dict))
        for ds in _datasets(loader.get('dataset')):
            ds_type = ds.get('type')
            ds_type = ds_type if isinstance(ds_type, str) else getattr(
                ds_type, '__name__', '')
            ann = ds.get('ann_file')
            if 'Coco' not in ds_type or not ann:
                continue
            path = ann if osp.isabs(ann) else osp.join(
                ds.get('data_root') or '', ann)
            files.append((f'{split}_dataloader.dataset.ann_file', path,
                          not format_only))
        evaluators = evaluator if isinstance(evaluator, list) else [evaluator]
        for e in evaluators:
            if isinstance(e, dict) and e.get('ann_file') and not e.get(
                    'format_only', False):
                files.append(
                    (f'{split}_evaluator.ann_file', e['ann_file'], True))
    return files


def check_config_annotations(cfg: Config,
                             splits=('train', 'val', 'test')) -> None:
    """Run :func:`check_coco_file` on each COCO file of ``splits``.

    Raises:
        AnnotationError: As :func:`check_coco_file`, with the config key.
    """
    seen = set()
    for where, path, require in _coco_files(cfg):
        if not where.startswith(tuple(splits)) or path in seen \
                or '://' in path:  # remote storage: read by its backend
            continue
        seen.add(path)
        try:
            check_coco_file(path, require_annotations=require)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'{where}: {e}') from None
        except AnnotationError as e:
            raise AnnotationError(f'{where}: {e}') from None
