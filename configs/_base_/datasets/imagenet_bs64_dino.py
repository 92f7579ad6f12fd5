# ImageNet-1K train images (labels unused) in DINO's multi-crop views, 64
# images per GPU.

# the one key to override: ImageNet in mmpretrain's layout (train/<class>/*);
# any image folder works with dataset type CustomDataset, with_label=False
data_root = 'data/imagenet/'

# 2 global 224-px crops, scale (0.4, 1); 8 local 96-px crops, scale
# (0.05, 0.4); flip, colour jitter, grayscale, per-crop blur and solarize
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=224,
        local_crop_size=96,
        global_crops_scale=(0.4, 1.),
        local_crops_scale=(0.05, 0.4),
        num_local_crops=8),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64,  # per GPU; 512 in total
    num_workers=10,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        split='train',
        with_label=False,  # labels unused (and no 1000-folder check)
        pipeline=train_pipeline))
