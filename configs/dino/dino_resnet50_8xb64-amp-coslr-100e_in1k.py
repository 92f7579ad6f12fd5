# Table 1 baseline: DINO ResNet-50, 100 epochs, official DINO's ResNet-50
# recipe (README of facebookresearch/dino; docs/recipes.md §2): SGD, lr
# 0.03 * batch / 256, constant weight decay 1e-4, global crops scale
# (0.14, 1), local crops (0.05, 0.14). Everything else as the BC-SSL config.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=224,
        local_crop_size=96,
        global_crops_scale=(0.14, 1.),
        local_crops_scale=(0.05, 0.14),
        num_local_crops=8),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN')),
    neck=dict(in_channels=2048))

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='SGD', lr=0.03 * 512 / 256, momentum=0.9,
        weight_decay=1e-4))
# no weight-decay schedule: 1e-4 throughout
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-9,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=10,
        convert_to_iter_based=True)
]
