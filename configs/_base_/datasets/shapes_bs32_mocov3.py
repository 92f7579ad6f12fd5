# The generated shapes images (tools/data/make_shapes_coco.py: 200 train
# images of 256 px; labels unused) in MoCo v3's two views cut at 96 px (the
# demo DINO's global crop size) with scale (0.2, 1), 32 images per batch,
# for the CPU demo; the augmentations of ./imagenet_bs256_mocov3.py.
_base_ = './imagenet_bs256_mocov3.py'

data_root = 'data/shapes/'

crop = dict(
    type='RandomResizedCrop',
    scale=96,
    crop_ratio_range=(0.2, 1.),
    backend='pillow')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[[
            crop, _base_.color_jitter, _base_.grayscale, _base_.blur_1,
            _base_.flip
        ],
                    [
                        crop, _base_.color_jitter, _base_.grayscale,
                        _base_.blur_2, _base_.solarize_2, _base_.flip
                    ]]),
    dict(type='PackInputs')
]
# num_workers=0: main-process loading keeps resume exact (RNGStateHook)
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train/',
        pipeline=train_pipeline))
