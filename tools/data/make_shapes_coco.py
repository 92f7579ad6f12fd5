"""Generate a tiny, deterministic COCO-format dataset of coloured shapes.

The data produced here is the embedded demo dataset used to fine-tune (or
train from scratch) a Mask R-CNN on CPU in a few minutes. It is designed to
be *easy to learn*: every image is small (256x256 by default) and holds one
to three large, high-contrast, non-overlapping objects of three classes
(``circle``, ``square`` and ``triangle``) on a smooth, mildly textured and
noisy background. Shape colours are random saturated colours that carry no
class information, so the class can only be decided from the shape. Squares
and triangles are randomly rotated.

Every instance is described by a polygon (circles are 48-gons). The polygon
is rasterised with ``pycocotools`` (the same routine mmdet uses to turn
polygon annotations into bitmap masks) and exactly those pixels are painted,
so the ground-truth mask equals the drawn pixels. ``bbox`` is the extent of
the polygon and ``area`` is the pixel area of the rasterised polygon.

Layout written under ``--out-dir``::

    {out}/train/000000.png ...
    {out}/val/000000.png ...
    {out}/annotations/instances_train.json
    {out}/annotations/instances_val.json
    {out}/cls/train/{circle,square,triangle}/000000.png ...
    {out}/cls/val/{circle,square,triangle}/000000.png ...
    {out}/meta.json

``cls/`` is a labelled classification split for the evaluation tools (k-NN,
linear probe, corruptions): one shape per image (``--cls-img-size`` px,
112 by default), classes in turn (image ``i`` is of class ``i % 3``), on the
same kind of background, in mmpretrain ``CustomDataset`` class folders.

``file_name`` in the annotation files is relative to the split image folder,
so an mmdet config uses e.g. ``data_prefix=dict(img='train/')``.

The output is deterministic: image ``i`` of split ``s`` is drawn from a numpy
``Generator`` seeded with ``(seed, split_index, i)``, so the same arguments
always give byte-identical JSON and identical images, train and val use
independent streams, and changing the number of images does not change the
images that both runs have in common. Re-running with the same arguments is a
fast no-op (see ``meta.json``); pass ``--force`` to regenerate anyway.

Example::

    python tools/data/make_shapes_coco.py --out-dir data/shapes
"""
from __future__ import annotations
import argparse
import json
import math
import os
import os.path as osp
import re
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

#: Bump whenever the generated data changes for the same arguments, so that
#: existing datasets are detected as stale and regenerated.
GENERATOR_VERSION = 'shapes-coco-v2'

CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
SPLITS: Tuple[str, ...] = ('train', 'val')

# Geometry / appearance parameters, expressed for a 256x256 image and scaled
# linearly with the image size.
_REF_SIZE = 256.0
_MIN_SIDE = 40.0  # smallest side / diameter in pixels at 256x256
_MAX_SIDE = 110.0  # largest side / diameter in pixels at 256x256
_BORDER = 2.0  # keep every vertex at least this far from the image border
_GAP = 4.0  # minimum pixel gap between two objects
_MAX_BOX_IOU = 0.1  # reject placements whose boxes overlap more than this
_MAX_OBJECTS = 3
_PLACEMENT_TRIES = 100
_CIRCLE_VERTICES = 48
_PIXEL_NOISE_STD = 3.0

_FILE_RE = re.compile(r'^\d{6}\.png$')


def _positive_int(value: str) -> int:
    """Argparse type: an integer > 0."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {value!r}')
    if number <= 0:
        raise argparse.ArgumentTypeError(
            f'must be a positive integer, got {number}')
    return number


def _non_negative_int(value: str) -> int:
    """Argparse type: an integer >= 0."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {value!r}')
    if number < 0:
        raise argparse.ArgumentTypeError(
            f'must be a non-negative integer, got {number}')
    return number


def _int_at_least(minimum: int):
    """Argparse type: an integer >= ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected an integer, got {value!r}')
        if number < minimum:
            raise argparse.ArgumentTypeError(
                f'must be at least {minimum}, got {number}')
        return number

    return parse


def get_args_parser() -> argparse.ArgumentParser:
    """Build the command line parser.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        description='Generate a small deterministic COCO instance '
        'segmentation dataset of coloured shapes (circle, square, triangle).')
    parser.add_argument(
        '--out-dir',
        default='data/shapes',
        help='output folder (default: %(default)s)')
    parser.add_argument(
        '--num-train',
        type=_positive_int,
        default=200,
        help='number of training images (default: %(default)s)')
    parser.add_argument(
        '--num-val',
        type=_positive_int,
        default=50,
        help='number of validation images (default: %(default)s)')
    parser.add_argument(
        '--img-size',
        type=_int_at_least(64),
        default=256,
        help='side of the square images in pixels, >= 64 '
        '(default: %(default)s)')
    parser.add_argument(
        '--seed',
        type=_non_negative_int,
        default=0,
        help='random seed (default: %(default)s)')
    parser.add_argument(
        '--num-cls-train',
        type=_non_negative_int,
        default=300,
        help='images of the classification split cls/train, one shape each '
        '(default: %(default)s)')
    parser.add_argument(
        '--num-cls-val',
        type=_non_negative_int,
        default=150,
        help='images of cls/val (default: %(default)s)')
    parser.add_argument(
        '--cls-img-size',
        type=_int_at_least(32),
        default=112,
        help='side of the classification images, >= 32 '
        '(default: %(default)s)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if an up-to-date dataset is present')
    return parser


# ---------------------------------------------------------------------------
# Drawing helpers
# ---------------------------------------------------------------------------


def _hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    """Convert one OpenCV-range HSV colour (H in [0, 180)) to float BGR."""
    hsv = np.array([[[h, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _make_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw a smooth, mildly textured, low-saturation background.

    A linear gradient between two greyish colours plus a low-frequency noise
    field. Per-pixel noise is added later to the whole image.

    Args:
        rng: Random generator.
        size: Image side in pixels.

    Returns:
        np.ndarray: Float32 BGR image of shape (size, size, 3) in [0, 255].
    """
    c0 = _hsv_to_bgr(
        rng.uniform(0, 180), rng.uniform(0, 50), rng.uniform(80, 170))
    c1 = _hsv_to_bgr(
        rng.uniform(0, 180), rng.uniform(0, 50), rng.uniform(80, 170))
    theta = rng.uniform(0, 2 * math.pi)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    xx, yy = np.meshgrid(coords, coords)
    t = (xx * math.cos(theta) + yy * math.sin(theta)) / math.sqrt(0.5) + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    img = c0 * (1.0 - t) + c1 * t
    # Low frequency texture: a coarse random grid upsampled smoothly.
    grid = rng.normal(0.0, 8.0, size=(6, 6, 3)).astype(np.float32)
    texture = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return img + texture


def _shape_vertices(rng: np.random.Generator, cls_name: str,
                    side: float) -> np.ndarray:
    """Vertices of a shape centred on the origin.

    Args:
        rng: Random generator (used for the rotation).
        cls_name: One of :data:`CLASSES`.
        side: Side length (square, triangle) or diameter (circle) in pixels.

    Returns:
        np.ndarray: Float array of shape (N, 2) with (x, y) vertices.
    """
    if cls_name == 'circle':
        n, radius, period = _CIRCLE_VERTICES, side / 2.0, 2 * math.pi
    elif cls_name == 'square':
        n, radius, period = 4, side / math.sqrt(2.0), math.pi / 2
    elif cls_name == 'triangle':  # equilateral
        n, radius, period = 3, side / math.sqrt(3.0), 2 * math.pi / 3
    else:
        raise ValueError(f'unknown class {cls_name!r}')
    rotation = rng.uniform(0.0, period)
    angles = rotation + np.arange(n) * (2 * math.pi / n)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes in (x1, y1, x2, y2) format."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) -
             inter)
    return inter / union


def _polygon_rle(polygon: List[float], size: int) -> Dict[str, Any]:
    """Rasterise a flat polygon with pycocotools (same as mmdet/COCO)."""
    return mask_utils.merge(mask_utils.frPyObjects([polygon], size, size))


def _place_objects(rng: np.random.Generator,
                   size: int) -> List[Tuple[int, List[float], np.ndarray]]:
    """Choose 1-3 non-overlapping shapes fully inside the image.

    Args:
        rng: Random generator.
        size: Image side in pixels.

    Returns:
        list: ``(label, flat_polygon, mask)`` per object, ``label`` being a
        0-based index into :data:`CLASSES` and ``mask`` a uint8 bitmap of the
        rasterised polygon.
    """
    scale = size / _REF_SIZE
    min_side, max_side = _MIN_SIDE * scale, _MAX_SIDE * scale
    border = _BORDER * scale
    gap = max(1, int(round(_GAP * scale)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT,
                                       (2 * gap + 1, 2 * gap + 1))

    num_objects = int(rng.integers(1, _MAX_OBJECTS + 1))
    occupied = np.zeros((size, size), dtype=np.uint8)
    boxes: List[Tuple[float, float, float, float]] = []
    objects: List[Tuple[int, List[float], np.ndarray]] = []
    for _ in range(num_objects):
        label = int(rng.integers(len(CLASSES)))
        for _ in range(_PLACEMENT_TRIES):
            side = rng.uniform(min_side, max_side)
            verts = _shape_vertices(rng, CLASSES[label], side)
            lo, hi = verts.min(0), verts.max(0)
            cx = rng.uniform(border - lo[0], size - border - hi[0])
            cy = rng.uniform(border - lo[1], size - border - hi[1])
            pts = np.round(verts + (cx, cy), 2)
            box = (*pts.min(0).tolist(), *pts.max(0).tolist())
            if any(_box_iou(box, other) > _MAX_BOX_IOU for other in boxes):
                continue
            polygon = pts.reshape(-1).tolist()
            mask = mask_utils.decode(_polygon_rle(polygon, size))
            if boxes and np.any(mask & occupied):
                continue
            occupied |= cv2.dilate(mask, kernel)
            boxes.append(box)
            objects.append((label, polygon, mask))
            break
        # An object that cannot be placed after many tries is dropped; the
        # first one always fits because the image is empty.
    return objects


def _render_image(
        rng: np.random.Generator, size: int
) -> Tuple[np.ndarray, List[Tuple[int, List[float], np.ndarray]]]:
    """Render one image and its objects.

    Args:
        rng: Random generator dedicated to this image.
        size: Image side in pixels.

    Returns:
        tuple: uint8 BGR image and the objects from :func:`_place_objects`.
    """
    img = _make_background(rng, size)
    objects = _place_objects(rng, size)
    for _, _, mask in objects:
        colour = _hsv_to_bgr(
            rng.uniform(0, 180), rng.uniform(190, 255), rng.uniform(200, 255))
        img[mask.astype(bool)] = colour
    img += rng.normal(0.0, _PIXEL_NOISE_STD, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def _render_single(rng: np.random.Generator, size: int,
                   label: int) -> np.ndarray:
    """One shape of class ``label`` filling 40-80% of a ``size`` image.

    Args:
        rng: Random generator dedicated to this image.
        size: Image side in pixels.
        label: Index into :data:`CLASSES`.

    Returns:
        np.ndarray: uint8 BGR image.
    """
    img = _make_background(rng, size)
    verts = _shape_vertices(rng, CLASSES[label], rng.uniform(0.4, 0.8) * size)
    lo, hi = verts.min(0), verts.max(0)
    border = 2.0
    cx = rng.uniform(border - lo[0], max(border - lo[0],
                                         size - border - hi[0]))
    cy = rng.uniform(border - lo[1], max(border - lo[1],
                                         size - border - hi[1]))
    polygon = np.round(verts + (cx, cy), 2).reshape(-1).tolist()
    mask = mask_utils.decode(_polygon_rle(polygon, size)).astype(bool)
    img[mask] = _hsv_to_bgr(
        rng.uniform(0, 180), rng.uniform(190, 255), rng.uniform(200, 255))
    img += rng.normal(0.0, _PIXEL_NOISE_STD, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# I/O helpers
# ---------------------------------------------------------------------------


def _dump_json(obj: Any) -> str:
    """Serialise deterministically."""
    return json.dumps(obj, separators=(',', ':'))


def _atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + ``os.replace``)."""
    dirname = osp.dirname(osp.abspath(path))
    fd, tmp_path = tempfile.mkstemp(
        dir=dirname, prefix='.' + osp.basename(path) + '.', suffix='.tmp')
    try:
        # mkstemp creates the file with mode 0600; use the usual umask mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


def _ann_file(out_dir: str, split: str) -> str:
    return osp.join(out_dir, 'annotations', f'instances_{split}.json')


def _meta(num_train: int,
          num_val: int,
          img_size: int,
          seed: int,
          num_cls_train: int = 0,
          num_cls_val: int = 0,
          cls_img_size: int = 112) -> Dict[str, Any]:
    return dict(
        generator_version=GENERATOR_VERSION,
        num_train=num_train,
        num_val=num_val,
        img_size=img_size,
        seed=seed,
        num_cls_train=num_cls_train,
        num_cls_val=num_cls_val,
        cls_img_size=cls_img_size)


def is_up_to_date(out_dir: str,
                  num_train: int,
                  num_val: int,
                  img_size: int,
                  seed: int,
                  num_cls_train: int = 0,
                  num_cls_val: int = 0,
                  cls_img_size: int = 112) -> bool:
    """Whether ``out_dir`` already holds the dataset for these arguments.

    Args:
        out_dir: Dataset root.
        num_train: Number of training images.
        num_val: Number of validation images.
        img_size: Image side in pixels.
        seed: Random seed.

    Returns:
        bool: True if both annotation files exist and ``meta.json`` records
        the same arguments and generator version.
    """
    if not all(osp.isfile(_ann_file(out_dir, s)) for s in SPLITS):
        return False
    try:
        with open(osp.join(out_dir, 'meta.json'), encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return meta == _meta(num_train, num_val, img_size, seed, num_cls_train,
                         num_cls_val, cls_img_size)


def _generate_split(out_dir: str, split: str, split_index: int,
                    num_images: int, img_size: int,
                    seed: int) -> Dict[str, Any]:
    """Generate the images and the annotation file of one split."""
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    per_class = {name: 0 for name in CLASSES}
    file_names = set()
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_index, index])
        img, objects = _render_image(rng, img_size)
        file_name = f'{index:06d}.png'
        file_names.add(file_name)
        if not cv2.imwrite(osp.join(img_dir, file_name), img):
            raise OSError(f'failed to write {osp.join(img_dir, file_name)}')
        image_id = index + 1
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                width=img_size,
                height=img_size))
        for label, polygon, _ in objects:
            xs, ys = polygon[0::2], polygon[1::2]
            x0, y0 = min(xs), min(ys)
            bbox = [x0, y0, round(max(xs) - x0, 2), round(max(ys) - y0, 2)]
            area = float(mask_utils.area(_polygon_rle(polygon, img_size)))
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label + 1,
                    bbox=bbox,
                    area=area,
                    segmentation=[polygon],
                    iscrowd=0))
            per_class[CLASSES[label]] += 1

    # Remove images left over from an earlier, larger run.
    for name in os.listdir(img_dir):
        if _FILE_RE.match(name) and name not in file_names:
            os.remove(osp.join(img_dir, name))

    coco = dict(
        info=dict(
            description='Synthetic coloured shapes (bcssl_mm demo data)',
            version=GENERATOR_VERSION),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(CLASSES)
        ])
    ann_file = _ann_file(out_dir, split)
    _atomic_write_text(ann_file, _dump_json(coco))
    return dict(
        ann_file=ann_file,
        img_dir=img_dir,
        num_images=len(images),
        num_instances=len(annotations),
        per_class=per_class)


def _generate_cls_split(out_dir: str, split: str, split_index: int,
                        num_images: int, img_size: int,
                        seed: int) -> Dict[str, Any]:
    """Write ``cls/<split>/<class>/<index>.png``, class ``index % 3``."""
    root = osp.join(out_dir, 'cls', split)
    per_class = {name: 0 for name in CLASSES}
    keep = {name: set() for name in CLASSES}
    for name in CLASSES:
        os.makedirs(osp.join(root, name), exist_ok=True)
    for index in range(num_images):
        label = index % len(CLASSES)
        rng = np.random.default_rng([seed, split_index, index])
        img = _render_single(rng, img_size, label)
        file_name = f'{index:06d}.png'
        path = osp.join(root, CLASSES[label], file_name)
        if not cv2.imwrite(path, img):
            raise OSError(f'failed to write {path}')
        keep[CLASSES[label]].add(file_name)
        per_class[CLASSES[label]] += 1
    for name in CLASSES:  # left over from an earlier, larger run
        for file_name in os.listdir(osp.join(root, name)):
            if _FILE_RE.match(file_name) and file_name not in keep[name]:
                os.remove(osp.join(root, name, file_name))
    return dict(img_dir=root, num_images=num_images, per_class=per_class)


def generate(out_dir: str,
             num_train: int,
             num_val: int,
             img_size: int,
             seed: int,
             num_cls_train: int = 0,
             num_cls_val: int = 0,
             cls_img_size: int = 112) -> Dict[str, Any]:
    """Generate (or regenerate) the whole dataset.

    Existing files are overwritten; ``meta.json`` is removed first and written
    last, so an interrupted run is never mistaken for an up-to-date dataset.

    Args:
        out_dir: Dataset root.
        num_train: Number of training images (> 0).
        num_val: Number of validation images (> 0).
        img_size: Image side in pixels (>= 64).
        seed: Random seed (>= 0).

    Returns:
        dict: Summary with ``out_dir``, ``classes`` and one entry per split
        (``ann_file``, ``img_dir``, ``num_images``, ``num_instances``,
        ``per_class``).
    """
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if value <= 0:
            raise ValueError(f'{name} must be positive, got {value}')
    if img_size < 64:
        raise ValueError(f'img_size must be at least 64, got {img_size}')
    if seed < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')

    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    meta_file = osp.join(out_dir, 'meta.json')
    if osp.exists(meta_file):
        os.remove(meta_file)
    summary: Dict[str, Any] = dict(out_dir=out_dir, classes=list(CLASSES))
    for split_index, (split,
                      num) in enumerate(zip(SPLITS, (num_train, num_val))):
        summary[split] = _generate_split(out_dir, split, split_index, num,
                                         img_size, seed)
    if cls_img_size < 32:
        raise ValueError(
            f'cls_img_size must be at least 32, got {cls_img_size}')
    # streams 2 and 3: independent of the detection images
    for split_index, (split, num) in enumerate(
            zip(SPLITS, (num_cls_train, num_cls_val)), start=2):
        if num > 0:
            summary[f'cls_{split}'] = _generate_cls_split(
                out_dir, split, split_index, num, cls_img_size, seed)
    _atomic_write_text(
        meta_file,
        _dump_json(
            _meta(num_train, num_val, img_size, seed, num_cls_train,
                  num_cls_val, cls_img_size)) + '\n')
    return summary


def format_summary(summary: Dict[str, Any]) -> str:
    """Human readable summary of :func:`generate`'s result."""
    lines = [f'shapes dataset written to {summary["out_dir"]}']
    for split in SPLITS:
        info = summary[split]
        counts = ', '.join(f'{k}={v}' for k, v in info['per_class'].items())
        lines.append(f'  {split}: {info["num_images"]} images, '
                     f'{info["num_instances"]} instances ({counts})')
    for split in SPLITS:
        info = summary.get(f'cls_{split}')
        if info is not None:
            counts = ', '.join(f'{k}={v}'
                               for k, v in info['per_class'].items())
            lines.append(f'  cls/{split}: {info["num_images"]} images, one '
                         f'shape each ({counts})')
    return '\n'.join(lines)


def main(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """Entry point.

    Args:
        args: Parsed arguments from :func:`get_args_parser`.

    Returns:
        dict | None: The summary from :func:`generate`, or None when the
        dataset was up to date and nothing was done.
    """
    params = dict(
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        seed=args.seed,
        num_cls_train=args.num_cls_train,
        num_cls_val=args.num_cls_val,
        cls_img_size=args.cls_img_size)
    if not args.force and is_up_to_date(args.out_dir, **params):
        print(f'{args.out_dir}: shapes dataset up to date, skipping '
              '(use --force to regenerate)')
        return None
    start = time.perf_counter()
    summary = generate(args.out_dir, **params)
    print(format_summary(summary))
    print(f'  done in {time.perf_counter() - start:.1f}s')
    return summary


if __name__ == '__main__':
    main(get_args_parser().parse_args())
