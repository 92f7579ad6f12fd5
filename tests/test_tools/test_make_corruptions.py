"""tools/data/make_corruptions.py: layout, determinism, resuming, errors."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import load_tool

tool = load_tool('data/make_corruptions.py')
# --num-workers pickles the tool's task function by module name
sys.modules.setdefault(tool.__name__, tool)
# one corruption seeded through numpy's global RNG, one with its own seed
CORRUPTIONS = ['motion_blur', 'impulse_noise']


def run(src, out, *extra):
    args = tool.get_args_parser().parse_args([
        src, out, '--corruptions', *CORRUPTIONS, '--severities', '1', '5',
        *extra
    ])
    return tool.main(args)


def tree(root):
    """relative path -> bytes of every file under root but the manifest."""
    return {
        osp.relpath(osp.join(d, f), root): open(osp.join(d, f), 'rb').read()
        for d, _, files in os.walk(root) for f in files if f != tool.MANIFEST
    }


def test_layout_and_determinism(shapes_cls_root, tmp_path):
    src = osp.join(shapes_cls_root, 'cls', 'val')
    run(src, str(tmp_path / 'a'))
    first = tree(tmp_path / 'a')
    # 2 corruptions x 2 severities x 3 classes x 2 images
    assert len(first) == 24
    assert 'motion_blur/5/circle/000000.png' in first
    # another order of corruptions and severities, in worker processes
    args = tool.get_args_parser().parse_args([
        src,
        str(tmp_path / 'b'), '--corruptions', *CORRUPTIONS[::-1],
        '--severities', '5', '1', '--num-workers', '2'
    ])
    tool.main(args)
    assert tree(tmp_path / 'b') == first
    # the seed matters; severities differ; the source is changed
    run(src, str(tmp_path / 'c'), '--seed', '1')
    other = tree(tmp_path / 'c')
    key = 'impulse_noise/1/square/000001.png'
    assert other[key] != first[key]
    assert first[key] != first[key.replace('/1/', '/5/')]
    clean = np.asarray(Image.open(osp.join(src, 'square', '000001.png')))
    noisy = np.asarray(Image.open(tmp_path / 'a' / key))
    assert noisy.shape == clean.shape and (noisy != clean).any()


def test_resume_is_idempotent(shapes_cls_root, tmp_path):
    src = tmp_path / 'src'
    for cls in ('circle', 'square'):
        (src / cls).mkdir(parents=True)
        for i in range(2):
            img = np.random.default_rng(i).integers(0, 255, (40, 48, 3))
            Image.fromarray(img.astype(np.uint8)).save(src / cls / f'{i}.png')
    out = str(tmp_path / 'out')
    run(str(src), out, '--max-per-class', '1')
    assert sorted(tree(out)) == sorted(f'{c}/{s}/{k}/0.png'
                                       for c in CORRUPTIONS for s in (1, 5)
                                       for k in ('circle', 'square'))
    before = tree(out)
    mtimes = {p: os.stat(osp.join(out, p)).st_mtime_ns for p in before}
    summary = run(str(src), out, '--max-per-class', '1')
    assert [s['written'] for s in summary.values()] == [0, 0]
    assert {p: os.stat(osp.join(out, p)).st_mtime_ns for p in before} == mtimes
    # a source newer than its outputs is redone, with the same result
    stat = os.stat(src / 'square' / '0.png')
    os.utime(
        src / 'square' / '0.png',
        ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**10))
    summary = run(str(src), out)  # now all images: 1 more per class
    assert [s['written'] for s in summary.values()] == [6, 6]
    after = tree(out)
    assert {p: after[p] for p in before} == before
    assert not any(p.endswith('.tmp') for p in after)
    # other settings into the same folder are refused, unless --force
    with pytest.raises(tool.CorruptionError, match=f'{out} .*seed 0 -> 1'):
        run(str(src), out, '--seed', '1')
    run(str(src), out, '--seed', '1', '--force')
    assert tree(out) != after


def test_bad_input_is_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(tool.CorruptionError, match='empty: no class folders'):
        run(str(tmp_path / 'empty'), str(tmp_path / 'o'))
    (tmp_path / 'small' / 'a').mkdir(parents=True)
    Image.new('RGB', (20, 40)).save(tmp_path / 'small' / 'a' / 'x.png')
    with pytest.raises(tool.CorruptionError, match=r'x\.png: 20x40 px'):
        run(str(tmp_path / 'small'), str(tmp_path / 'o'))
    with pytest.raises(tool.CorruptionError, match='unknown corruptions'):
        tool.main(tool.get_args_parser().parse_args(
            [str(tmp_path / 'small'), 'o', '--corruptions', 'rain']))
