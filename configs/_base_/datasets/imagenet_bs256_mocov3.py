# ImageNet-1K train images (labels unused) in MoCo v3's two views, 256
# images per GPU: official MoCo v3's ViT data (docs/recipes.md §8), as in
# mmpretrain's MoCo v3 ViT configs: RandomResizedCrop 224 with scale
# (0.08, 1) (`--crop-min 0.08`; 0.2 for ResNet-50) and BYOL's asymmetric
# augmentations: both views colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
# grayscale p 0.2, flip; view 1 blur p 1.0; view 2 blur p 0.1 and solarize
# p 0.2. The pieces are named so that a child can rebuild the views with
# another crop (../datasets/shapes_bs32_mocov3.py).
# the one key to override: ImageNet in mmpretrain's layout (train/<class>/*);
# any image folder works with dataset type CustomDataset
data_root = 'data/imagenet/'

crop = dict(
    type='RandomResizedCrop',
    scale=224,
    crop_ratio_range=(0.08, 1.),
    backend='pillow')
color_jitter = dict(
    type='RandomApply',
    transforms=[
        dict(
            type='ColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.2,
            hue=0.1)
    ],
    prob=0.8)
grayscale = dict(
    type='RandomGrayscale',
    prob=0.2,
    keep_channels=True,
    channel_weights=(0.114, 0.587, 0.2989))
blur_1 = dict(
    type='GaussianBlur',
    magnitude_range=(0.1, 2.0),
    magnitude_std='inf',
    prob=1.)
blur_2 = dict(blur_1, prob=0.1)
solarize_2 = dict(type='Solarize', thr=128, prob=0.2)
flip = dict(type='RandomFlip', prob=0.5)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[[crop, color_jitter, grayscale, blur_1, flip],
                    [crop, color_jitter, grayscale, blur_2, solarize_2,
                     flip]]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=256,  # per GPU; 4096 in total on 16 GPUs
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        data_prefix='train',
        with_label=False,  # labels unused (and no 1000-folder check)
        pipeline=train_pipeline))
