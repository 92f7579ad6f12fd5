# Table 1 baseline: DINO ResNet-50, 100 epochs, official DINO's ResNet-50
# recipe (docs/recipes.md §2): the README command of facebookresearch/dino
# (`--arch resnet50 --optimizer sgd --lr 0.03 --weight_decay 1e-4
# --weight_decay_end 1e-4 --global_crops_scale 0.14 1 --local_crops_scale
# 0.05 0.14`) with main_dino.py's defaults for every other argument, which
# differ from the BC-SSL recipe in three more values: teacher temperature
# 0.04 throughout (`--teacher_temp 0.04`, `--warmup_teacher_temp_epochs 0`),
# `--norm_last_layer True`, and torchvision's ResNet-50, which does not
# zero-initialise the last BN of each residual block. Everything else
# (batch 8 x 64, AMP, clipping, warm-up and cosine lr, teacher momentum, head
# sizes, SyncBN) is the BC-SSL config's.
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
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=False),
    neck=dict(in_channels=2048, norm_last_layer=True))

# lr = 0.03 * 512 / 256
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='SGD',
        lr=0.03 * 512 / 256,
        momentum=0.9,
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
custom_hooks = [
    dict(
        type='DINOHook',
        momentum=0.996,  # cosine to 1 over all iterations
        end_momentum=1.,
        warmup_teacher_temp=0.04,
        teacher_temp=0.04,
        warmup_teacher_temp_epochs=0,
        freeze_last_layer_epochs=1),
    dict(type='RNGStateHook')
]
