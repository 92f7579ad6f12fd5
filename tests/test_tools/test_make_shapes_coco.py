"""Tests for ``tools/data/make_shapes_coco.py``."""
import importlib.util
import json
import os
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

SCRIPT = (
    Path(__file__).resolve().parents[2] / 'tools' / 'data' /
    'make_shapes_coco.py')

# Tiny but realistic sizes keep the tests fast.
NUM_TRAIN, NUM_VAL, IMG_SIZE = 6, 3, 96


@pytest.fixture(scope='module')
def mod():
    spec = importlib.util.spec_from_file_location('make_shapes_coco', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gen(mod,
         out_dir,
         seed=0,
         num_train=NUM_TRAIN,
         num_val=NUM_VAL,
         img_size=IMG_SIZE):
    return mod.generate(str(out_dir), num_train, num_val, img_size, seed)


def _files(out_dir):
    """Relative path -> bytes of every annotation file and image."""
    out_dir = Path(out_dir)
    paths = sorted(out_dir.glob('annotations/*.json'))
    paths += sorted(out_dir.glob('train/*.png'))
    paths += sorted(out_dir.glob('val/*.png'))
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in paths}


def test_deterministic(mod, tmp_path):
    s1 = _gen(mod, tmp_path / 'a', seed=3)
    s2 = _gen(mod, tmp_path / 'b', seed=3)
    files_a, files_b = _files(tmp_path / 'a'), _files(tmp_path / 'b')
    assert len(files_a) == 2 + NUM_TRAIN + NUM_VAL
    assert files_a == files_b
    for split in ('train', 'val'):
        assert s1[split]['num_instances'] == s2[split]['num_instances']
        for name in os.listdir(tmp_path / 'a' / split):
            img_a = cv2.imread(str(tmp_path / 'a' / split / name))
            img_b = cv2.imread(str(tmp_path / 'b' / split / name))
            assert img_a.shape == (IMG_SIZE, IMG_SIZE, 3)
            np.testing.assert_array_equal(img_a, img_b)
    # train and val are drawn from different streams
    assert files_a['train/000000.png'] != files_a['val/000000.png']


def test_valid_coco(mod, tmp_path):
    summary = _gen(mod, tmp_path, seed=1, num_train=10)
    for split, num in (('train', 10), ('val', NUM_VAL)):
        coco = COCO(summary[split]['ann_file'])
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == [(1, 'circle'),
                                                        (2, 'square'),
                                                        (3, 'triangle')]
        assert len(coco.getImgIds()) == num
        assert summary[split]['num_instances'] == len(coco.getAnnIds())
        for img_info in coco.loadImgs(coco.getImgIds()):
            assert img_info['width'] == img_info['height'] == IMG_SIZE
            img_path = tmp_path / split / img_info['file_name']
            img = cv2.imread(str(img_path)).astype(np.float32)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
            assert 1 <= len(anns) <= 3
            masks = [coco.annToMask(a) for a in anns]
            union = np.any(masks, axis=0)
            for ann, mask in zip(anns, masks):
                assert ann['iscrowd'] == 0
                assert ann['category_id'] in (1, 2, 3)
                x, y, w, h = ann['bbox']
                assert w > 0 and h > 0
                assert 0 <= x and x + w <= IMG_SIZE
                assert 0 <= y and y + h <= IMG_SIZE
                assert mask.any()
                assert ann['area'] == pytest.approx(mask.sum())
                ys, xs = np.nonzero(mask)
                mask_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                np.testing.assert_allclose(
                    mask_box, [x, y, x + w, y + h], atol=2)
                # the object is clearly visible against its surroundings
                kernel = np.ones((7, 7), np.uint8)
                ring = cv2.dilate(mask, kernel).astype(bool) & ~union
                inside = img[mask.astype(bool)].mean(0)
                outside = img[ring].mean(0)
                assert np.linalg.norm(inside - outside) > 40
            # objects do not overlap
            assert np.sum(masks, axis=0).max() == 1


def test_different_seeds(mod, tmp_path):
    _gen(mod, tmp_path / 'a', seed=0)
    _gen(mod, tmp_path / 'b', seed=1)
    files_a, files_b = _files(tmp_path / 'a'), _files(tmp_path / 'b')
    assert files_a.keys() == files_b.keys()
    for split in ('train', 'val'):
        key = f'annotations/instances_{split}.json'
        assert files_a[key] != files_b[key]
    assert all(files_a[k] != files_b[k] for k in files_a if k.endswith('.png'))


def _run_main(mod, out_dir, *extra):
    argv = [
        '--out-dir',
        str(out_dir), '--num-train',
        str(NUM_TRAIN), '--num-val',
        str(NUM_VAL), '--img-size',
        str(IMG_SIZE)
    ]
    return mod.main(mod.get_args_parser().parse_args(argv + list(extra)))


def test_skip_if_up_to_date(mod, tmp_path, capsys):
    out = tmp_path / 'shapes'
    assert _run_main(mod, out) is not None
    watched = [
        out / 'annotations' / 'instances_train.json',
        out / 'annotations' / 'instances_val.json',
        out / 'meta.json',
        out / 'train' / '000000.png',
        out / 'val' / '000000.png',
    ]
    # Back-date the files so that any rewrite is detectable whatever the
    # file system's timestamp granularity.
    old = 1_000_000_000
    for path in watched:
        os.utime(path, ns=(old * 10**9, old * 10**9))
    capsys.readouterr()

    assert _run_main(mod, out) is None
    assert 'up to date, skipping' in capsys.readouterr().out
    assert all(path.stat().st_mtime_ns == old * 10**9 for path in watched)

    # --force regenerates identical data
    before = _files(out)
    assert _run_main(mod, out, '--force') is not None
    assert all(path.stat().st_mtime_ns != old * 10**9 for path in watched)
    assert _files(out) == before

    # changing an argument regenerates, stale images are removed
    assert _run_main(mod, out, '--num-val', '2') is not None
    val = json.loads((out / 'annotations' / 'instances_val.json').read_text())
    assert len(val['images']) == 2
    assert sorted(os.listdir(out / 'val')) == ['000000.png', '000001.png']
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['num_val'] == 2
    # ... and the same arguments are then up to date again
    capsys.readouterr()
    assert _run_main(mod, out, '--num-val', '2') is None
    assert 'up to date' in capsys.readouterr().out


def test_missing_annotation_regenerates(mod, tmp_path):
    out = tmp_path / 'shapes'
    _run_main(mod, out)
    os.remove(out / 'annotations' / 'instances_val.json')
    assert _run_main(mod, out) is not None
    assert osp.isfile(out / 'annotations' / 'instances_val.json')
    assert not [
        p for p in os.listdir(out / 'annotations') if p.endswith('.tmp')
    ]


@pytest.mark.parametrize('argv, name', [
    (['--num-train', '0'], '--num-train'),
    (['--num-val', '-1'], '--num-val'),
    (['--img-size', '32'], '--img-size'),
    (['--num-train', 'abc'], '--num-train'),
])
def test_bad_arguments(mod, capsys, argv, name):
    with pytest.raises(SystemExit) as exc:
        mod.get_args_parser().parse_args(argv)
    assert exc.value.code == 2
    assert name in capsys.readouterr().err


def test_classification_split(mod, tmp_path):
    """cls/<split>/<class>/ holds one shape per image, classes in turn, and
    does not change the detection images."""
    _gen(mod, tmp_path / 'det')
    mod.generate(
        str(tmp_path / 'both'),
        NUM_TRAIN,
        NUM_VAL,
        IMG_SIZE,
        0,
        num_cls_train=7,
        num_cls_val=3,
        cls_img_size=48)
    assert _files(tmp_path / 'det') == _files(tmp_path / 'both')
    root = tmp_path / 'both' / 'cls'
    train = {c: sorted(os.listdir(root / 'train' / c)) for c in mod.CLASSES}
    assert train == {
        'circle': ['000000.png', '000003.png', '000006.png'],
        'square': ['000001.png', '000004.png'],
        'triangle': ['000002.png', '000005.png']
    }
    assert sum(len(os.listdir(root / 'val' / c)) for c in mod.CLASSES) == 3
    img = cv2.imread(str(root / 'train' / 'square' / '000001.png'))
    assert img.shape == (48, 48, 3)
    # the shape is saturated, the background is not: a single object whose
    # area is a sizeable part of the image
    sat = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 1]
    assert 0.1 < (sat > 150).mean() < 0.7
    assert mod.is_up_to_date(
        str(tmp_path / 'both'), NUM_TRAIN, NUM_VAL, IMG_SIZE, 0, 7, 3, 48)
    assert not mod.is_up_to_date(
        str(tmp_path / 'both'), NUM_TRAIN, NUM_VAL, IMG_SIZE, 0, 8, 3, 48)
    # shrinking removes the images the smaller run does not have
    mod.generate(
        str(tmp_path / 'both'),
        NUM_TRAIN,
        NUM_VAL,
        IMG_SIZE,
        0,
        num_cls_train=3,
        num_cls_val=3,
        cls_img_size=48)
    assert os.listdir(root / 'train' / 'circle') == ['000000.png']
