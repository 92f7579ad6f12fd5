"""Write ImageNet-C-style corruptions of a labelled image folder.

    python tools/data/make_corruptions.py SRC OUT [--corruptions NAME ...]
        [--severities S ...] [--max-per-class N] [--seed 0] [--jpeg]
        [--resize-crop 256 224] [--num-workers N] [--force]

``SRC`` holds one folder per class (ImageNet's val layout, or
``data/shapes/cls/val``); ``OUT`` receives ImageNet-C's layout,
``<corruption>/<severity>/<class>/<file>``, by default the 15 test
corruptions x 5 severities. ``tools/benchmarks/robustness.py --corrupted
OUT`` evaluates a classifier on it.

The corruptions are those of the ``imagecorruptions`` package, from its
maintained fork ``imagecorruptions-imaug`` (1.1.5): the original 1.1.2
calls scikit-image's removed ``gaussian(multichannel=True)``, so its
glass_blur (and gaussian_blur) raise TypeError with scikit-image 0.26, and
it imports ``pkg_resources`` (gone with setuptools >= 81). The fork installs
the same ``imagecorruptions`` module with the same ``corrupt()``.

Each image is corrupted with its own seed, drawn from ``--seed``, the
corruption, the severity and the file's path, so the output does not
depend on the order, on ``--num-workers`` or on earlier interrupted runs.
Existing outputs newer than their source are kept (the run resumes);
every file is written under a temporary name and renamed. ``OUT/
corruptions.json`` records the settings; a later run with other settings
into the same ``OUT`` is refused unless ``--force``.

Where the images differ from ImageNet-C's (see docs/robustness.md):
motion_blur and snow use a re-implementation of ImageMagick's motion blur
(ImageNet-C called Wand/ImageMagick); frost picks among the package's 6
frost images (ImageNet-C's code drew from the first 5); the source images
are not resized unless ``--resize-crop 256 224`` (ImageNet-C: Resize 256 +
CenterCrop 224 of ImageNet val); files keep their format unless ``--jpeg``
(ImageNet-C: JPEG quality 85); the random draws differ.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from bcssl_mm.analysis import format_table
from bcssl_mm.evaluation.robustness import IMAGENET_C_CORRUPTIONS, SEVERITIES

MANIFEST = 'corruptions.json'
# mmpretrain CustomDataset's default extensions
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
# ImageNet-C's JPEG quality
JPEG_QUALITY = 85
# corruptions whose randomness is not numpy's global RNG: they take a seed
SEEDED = ('impulse_noise', 'glass_blur')


class CorruptionError(ValueError):
    """Bad input to the corruption tool; the message names the path."""


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Write ImageNet-C-style corruptions of a class-folder '
        'image tree into <out>/<corruption>/<severity>/<class>/<file>')
    parser.add_argument('src', help='labelled folder: one folder per class')
    parser.add_argument('out', help='output root')
    parser.add_argument(
        '--corruptions',
        nargs='+',
        default=list(IMAGENET_C_CORRUPTIONS),
        metavar='NAME',
        help='corruptions to write (default: the 15 of ImageNet-C)')
    parser.add_argument(
        '--severities',
        nargs='+',
        type=int,
        default=list(SEVERITIES),
        metavar='S',
        help='severities in 1-5 (default: all)')
    parser.add_argument(
        '--max-per-class',
        type=int,
        help='corrupt only the first N images (sorted by path) of each class')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed (default: %(default)s)')
    parser.add_argument(
        '--jpeg',
        action='store_true',
        help=f'write every image as JPEG of quality {JPEG_QUALITY} with a '
        '.JPEG suffix, as ImageNet-C (default: keep the source format)')
    parser.add_argument(
        '--resize-crop',
        nargs=2,
        type=int,
        metavar=('RESIZE', 'CROP'),
        help='resize the shorter side to RESIZE and centre-crop CROP before '
        'corrupting, as ImageNet-C (256 224)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='worker processes (default: 0, in this process)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='rewrite every output, even with other settings in OUT')
    return parser


def list_images(src: str,
                max_per_class: Optional[int] = None) -> List[Tuple[str, str]]:
    """``(class, path relative to the class folder)`` of every image.

    Classes are the sub-folders of ``src``; images are searched recursively
    inside each, sorted, and the first ``max_per_class`` are kept.
    """
    if not osp.isdir(src):
        raise CorruptionError(f'{src}: no such folder')
    classes = sorted(d for d in os.listdir(src) if osp.isdir(osp.join(src, d)))
    if not classes:
        raise CorruptionError(f'{src}: no class folders')
    items = []
    for cls in classes:
        root = osp.join(src, cls)
        files = sorted(
            osp.relpath(osp.join(d, f), root)
            for d, _, names in os.walk(root, followlinks=True) for f in names
            if f.lower().endswith(IMG_EXTENSIONS))
        if not files:
            raise CorruptionError(f'{root}: no images ({IMG_EXTENSIONS})')
        items += [(cls, f) for f in files[:max_per_class]]
    return items


def image_seed(seed: int, corruption: str, severity: int, cls: str,
               relpath: str) -> int:
    """A 32-bit seed for one output image, independent of run order."""
    key = f'{seed}/{corruption}/{severity}/{cls}/{relpath}'.encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], 'little')


def output_path(out: str, corruption: str, severity: int, cls: str,
                relpath: str, jpeg: bool) -> str:
    if jpeg:
        relpath = osp.splitext(relpath)[0] + '.JPEG'
    return osp.join(out, corruption, str(severity), cls, relpath)


def load_image(path: str,
               resize_crop: Optional[Sequence[int]] = None) -> np.ndarray:
    """An RGB uint8 ``(H, W, 3)`` array, optionally resized and cropped."""
    try:
        img = Image.open(path).convert('RGB')
    except OSError as e:
        raise CorruptionError(f'{path}: not a readable image ({e})') from None
    if resize_crop is not None:
        # the torchvision transforms ImageNet-C was made with
        from torchvision import transforms
        img = transforms.CenterCrop(resize_crop[1])(
            transforms.Resize(resize_crop[0])(img))
    array = np.asarray(img)
    if min(array.shape[:2]) < 32:
        raise CorruptionError(f'{path}: {array.shape[1]}x{array.shape[0]} '
                              'px; imagecorruptions needs at least 32 px')
    return array


def save_atomic(array: np.ndarray, path: str) -> None:
    """Write an image under a temporary name, then rename it to ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    fmt = Image.registered_extensions().get(osp.splitext(path)[1].lower())
    if fmt is None:
        raise CorruptionError(f'{path}: PIL cannot write this format')
    # the temporary name ends in .tmp: no dataset reads it as an image
    tmp = f'{path}.{os.getpid()}.tmp'
    params = dict(quality=JPEG_QUALITY) if fmt == 'JPEG' else {}
    Image.fromarray(array).save(tmp, format=fmt, **params)
    os.replace(tmp, path)


def corrupt_image(src_path: str, dst_path: str, corruption: str, severity: int,
                  seed: int, resize_crop: Optional[Sequence[int]]) -> None:
    """Corrupt one image with its own seed and write it atomically."""
    from imagecorruptions import corrupt
    image = load_image(src_path, resize_crop)
    # NOTE: most corruptions draw from numpy's global RNG; impulse_noise
    # (scikit-image) and glass_blur (numba) take their own seed
    np.random.seed(seed)
    kwargs = dict(seed=seed) if corruption in SEEDED else {}
    out = corrupt(
        image, severity=severity, corruption_name=corruption, **kwargs)
    save_atomic(out, dst_path)


def _run_task(task: tuple) -> Tuple[str, float]:
    start = time.perf_counter()
    corrupt_image(*task)
    return task[2], time.perf_counter() - start


def check_manifest(out: str, settings: Dict, force: bool) -> None:
    """Refuse to mix settings in one output root; record the settings."""
    path = osp.join(out, MANIFEST)
    if osp.isfile(path) and not force:
        with open(path) as f:
            old = json.load(f)
        changed = {
            k: (old.get(k), v)
            for k, v in settings.items() if old.get(k) != v
        }
        if changed:
            raise CorruptionError(
                f'{out} was written with other settings ({path}: ' +
                ', '.join(f'{k} {a!r} -> {b!r}'
                          for k, (a, b) in changed.items()) +
                '); choose another output folder or pass --force')
    os.makedirs(out, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(settings, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    for dist in ('imagecorruptions-imaug', 'imagecorruptions'):
        try:
            return f'{dist} {version(dist)}'
        except PackageNotFoundError:
            continue
    raise CorruptionError('the imagecorruptions package is not installed; '
                          'pip install imagecorruptions-imaug==1.1.5')


def check_args(args: argparse.Namespace) -> None:
    from imagecorruptions import get_corruption_names
    known = get_corruption_names('all')
    unknown = [c for c in args.corruptions if c not in known]
    if unknown:
        raise CorruptionError(f'unknown corruptions {unknown}; one of '
                              f'{known}')
    bad = [s for s in args.severities if s not in SEVERITIES]
    if bad:
        raise CorruptionError(f'severities must be in 1-5, got {bad}')
    if args.max_per_class is not None and args.max_per_class < 1:
        raise CorruptionError(
            f'--max-per-class must be >= 1, got {args.max_per_class}')


def main(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Write the corruptions; return per corruption the images written,
    skipped and the mean seconds per written image."""
    package = package_version()
    check_args(args)
    items = list_images(args.src, args.max_per_class)
    check_manifest(
        args.out,
        dict(
            source=osp.abspath(args.src),
            package=package,
            seed=args.seed,
            jpeg=args.jpeg,
            resize_crop=args.resize_crop),
        force=args.force)

    tasks, skipped = [], dict.fromkeys(args.corruptions, 0)
    for corruption in args.corruptions:
        for severity in args.severities:
            for cls, rel in items:
                src = osp.join(args.src, cls, rel)
                dst = output_path(args.out, corruption, severity, cls, rel,
                                  args.jpeg)
                if (not args.force and osp.isfile(dst)
                        and osp.getmtime(dst) >= osp.getmtime(src)):
                    skipped[corruption] += 1
                    continue
                tasks.append((src, dst, corruption, severity,
                              image_seed(args.seed, corruption, severity, cls,
                                         rel), args.resize_crop))
    print(
        f'{len(items)} images x {len(args.corruptions)} corruptions x '
        f'{len(args.severities)} severities: {len(tasks)} to write, '
        f'{sum(skipped.values())} up to date ({package})',
        flush=True)

    start = time.perf_counter()
    times: Dict[str, List[float]] = {c: [] for c in args.corruptions}
    if args.num_workers > 0 and tasks:
        with ProcessPoolExecutor(args.num_workers) as pool:
            results = list(pool.map(_run_task, tasks, chunksize=16))
    else:
        results = [_run_task(t) for t in tasks]
    for corruption, seconds in results:
        times[corruption].append(seconds)

    summary = {
        c: dict(
            written=len(times[c]),
            skipped=skipped[c],
            ms_per_image=1e3 * float(np.mean(times[c])) if times[c] else 0.)
        for c in args.corruptions
    }
    print(
        format_table(
            ['corruption', 'written', 'up to date', 'ms / image'],
            [[c, s['written'], s['skipped'], f'{s["ms_per_image"]:.1f}']
             for c, s in summary.items()],
            align=['<', '>', '>', '>'],
            notes=[
                f'{time.perf_counter() - start:.1f} s in all, '
                f'into {args.out}'
            ]))
    return summary


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except CorruptionError as e:
        raise SystemExit(f'error: {e}')
