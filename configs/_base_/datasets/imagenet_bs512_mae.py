# ImageNet-1K train images (labels unused) for MAE-Lite pretraining, 512
# images per GPU: RandomResizedCrop 224 of scale (0.08, 1) and a horizontal
# flip (MAE-Lite's; official MAE crops (0.2, 1)). MAE-Lite picks bilinear or
# bicubic at random per image (timm's 'random'); this crop is bicubic.

# the one key to override: ImageNet in mmpretrain's layout (train/<class>/*)
data_root = 'data/imagenet/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=512,  # per GPU; 4096 in total
    num_workers=10,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        split='train',
        with_label=False,
        pipeline=train_pipeline))
