# MoCo v3 pretraining of ResNet-50 on ImageNet-1K, 100 epochs: official MoCo
# v3's ResNet-50 recipe (docs/recipes.md §8; README of
# facebookresearch/moco-v3: linear 68.9 at 100 epochs): 8 GPUs x 512 =
# 4096 images, LARS lr 0.6 x 4096 / 256 = 9.6, momentum 0.9, wd 1e-6,
# no decay and no LARS adaptation on any parameter of at most one dimension
# (biases, BN), 10 warm-up epochs then cosine, T 1.0, momentum 0.99 -> 1,
# crop scale (0.2, 1) (mmpretrain's MoCo v3 data: BYOL's augmentations),
# AMP, SyncBN. The 300-epoch recipe: lr 0.3 x 4096 / 256, same otherwise.
#
# Train (the data root is the one key to set):
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
_base_ = [
    '../_base_/models/mocov3_resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mocov3.py',
    '../_base_/schedules/mocov3_adamw_coslr_300e.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(
    drop_last=True,
    # NOTE: a base read with `mmpretrain::` tags its dicts with
    # _scope_='mmpretrain', which mmengine's Runner passes on to the collate
    # function as a keyword (TypeError); a fresh dict has no tag
    collate_fn=dict(_delete_=True, type='default_collate'))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        _delete_=True,
        # official MoCo v3's LARS arithmetic (mmpretrain's LARS scales by
        # the lr before the momentum buffer, which shrinks warm-up steps)
        type='MoCoV3LARS',
        lr=0.6 * 4096 / 256,
        momentum=0.9,
        weight_decay=1e-6),
    # official MoCo v3's LARS decays and adapts only `if p.ndim > 1`: by
    # shape, so BN and biases of every module are covered
    paramwise_cfg=dict(flat_cfg=dict(decay_mult=0., lars_exclude=True)))

max_epochs = 100
warmup_epochs = 10
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
