# The generated shapes images (tools/data/make_shapes_coco.py: 200 train
# images of 256 px; labels unused) in scaled-down multi-crop views, 32 images
# per batch, for the CPU demo.
data_root = 'data/shapes/'

# 2 global 96-px crops and 4 local 48-px crops, DINO's scales and
# augmentations otherwise
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=96,
        local_crop_size=48,
        global_crops_scale=(0.4, 1.),
        local_crops_scale=(0.05, 0.4),
        num_local_crops=4),
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
