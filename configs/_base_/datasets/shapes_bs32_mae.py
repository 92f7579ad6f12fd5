# The generated shapes images (tools/data/make_shapes_coco.py: 200 train
# images of 256 px; labels unused) for the CPU MAE demo, 32 images per batch:
# RandomResizedCrop 96 (6 x 6 patches of 16 px) of scale (0.2, 1), official
# MAE's (MAE-Lite's 0.08 cuts 20-px regions of these images), and a flip.
data_root = 'data/shapes/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=96,
        crop_ratio_range=(0.2, 1.),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
# num_workers=0: main-process loading keeps resume exact (RNGStateHook)
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train/',
        with_label=False,
        pipeline=train_pipeline))
