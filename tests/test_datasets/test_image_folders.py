"""mmpretrain's datasets read DINO's data; the DINO pipeline batches right."""
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.datasets import CustomDataset, ImageNet
from mmpretrain.registry import MODELS
from PIL import Image

import bcssl_mm.datasets  # noqa: F401  registers DINOMultiCrop

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=32,
        local_crop_size=16,
        num_local_crops=2),
    dict(type='PackInputs'),
]


def save_image(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(
        0, 256, (size, size, 3), dtype=np.uint8)
    fmt = 'PNG' if path.suffix.lower() == '.png' else 'JPEG'
    Image.fromarray(rgb).save(path, format=fmt)


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory) -> str:
    """data_root/train/<wnid>/*.JPEG, as ImageNet's train split."""
    root = tmp_path_factory.mktemp('imagenet')
    for c, wnid in enumerate(['n01440764', 'n01443537']):
        for i in range(3):
            save_image(root / 'train' / wnid / f'{wnid}_{i}.JPEG', 10 * c + i)
    return str(root)


def test_imagenet_layout(imagenet_root):
    # pretraining needs no labels: every image of the split, recursively
    ds = ImageNet(
        data_root=imagenet_root,
        split='train',
        with_label=False,
        pipeline=PIPELINE)
    assert len(ds) == 6
    assert all(
        osp.basename(osp.dirname(ds.get_data_info(i)['img_path'])).startswith(
            'n014') for i in range(6))
    views = ds[0]['inputs']
    assert [tuple(v.shape)
            for v in views] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 2

    # with labels, ImageNet expects its 1000 class folders unless told
    ds = ImageNet(
        data_root=imagenet_root,
        split='train',
        metainfo=dict(classes=('tench', 'goldfish')))
    assert [ds.get_data_info(i)['gt_label']
            for i in range(6)] == [0] * 3 + [1] * 3


def test_flat_and_nested_folders_without_labels(tmp_path):
    flat = tmp_path / 'flat'
    for i, name in enumerate(['a.png', 'b.jpg', 'c.JPEG', 'd.jpeg']):
        save_image(flat / name, i, size=20)
    (flat / 'notes.txt').write_text('not an image')
    ds = CustomDataset(data_root=str(flat), with_label=False)
    paths = [osp.basename(ds.get_data_info(i)['img_path']) for i in range(4)]
    assert len(ds) == 4 and sorted(paths) == [
        'a.png', 'b.jpg', 'c.JPEG', 'd.jpeg'
    ]

    nested = tmp_path / 'nested'
    save_image(nested / 'top.jpg', 0, size=20)
    save_image(nested / 'x' / 'mid.png', 1, size=20)
    save_image(nested / 'x' / 'y' / 'deep.jpg', 2, size=20)
    ds = CustomDataset(
        data_root=str(nested), with_label=False, pipeline=PIPELINE)
    paths = sorted(
        osp.relpath(ds.get_data_info(i)['img_path'], nested)
        for i in range(len(ds)))
    assert paths == ['top.jpg', 'x/mid.png', 'x/y/deep.jpg']
    assert len(ds[2]['inputs']) == 4


def test_dataloader_and_data_preprocessor(imagenet_root):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(
            dict(
                batch_size=3,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='ImageNet',
                    data_root=imagenet_root,
                    split='train',
                    with_label=False,
                    pipeline=PIPELINE)),
            seed=0)
        preprocessor = MODELS.build(
            dict(
                type='SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True))
    batch = next(iter(loader))
    raw = batch['inputs']
    assert [tuple(v.shape)
            for v in raw] == [(3, 3, 32, 32)] * 2 + [(3, 3, 16, 16)] * 2
    assert all(v.dtype == torch.uint8 for v in raw)
    assert len(batch['data_samples']) == 3

    out = preprocessor(batch, training=True)['inputs']
    assert isinstance(out, list) and len(out) == 4
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    for r, o in zip(raw, out):
        assert o.dtype == torch.float32 and o.shape == r.shape
        # BGR -> RGB, then ImageNet mean / std per RGB channel
        expected = (r[:, [2, 1, 0]].float() - mean) / std
        torch.testing.assert_close(o, expected)
