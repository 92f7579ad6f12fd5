# Demo: MoCo v3 pretraining of a tiny BC-SSL ('atto' widths 40-320, k9, BN)
# on the 200 generated shapes images (labels unused), on CPU in a few
# minutes: the BC-SSL-T MoCo v3 recipe
# (mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py, same bases) scaled down
# like the demo DINO
# (configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py,
# the run it is compared with): 96-px views, smaller heads (hidden 512, out
# 128), batch 32, 10 epochs (60 iterations) with 1 warm-up epoch, fp32, one
# process. For so short a run lr is 1e-3 (the recipe's rule gives
# 1.5e-4 x 32 / 256 = 1.9e-5, too small for 60 steps).
# `make demo-mocov3` then evaluates the base encoder (k-NN) and fine-tunes
# Mask R-CNN from it. The k-NN top-1 of the base encoder on the labelled
# shapes is logged every 5 epochs (KNNMonitorHook).
_base_ = [
    '../_base_/models/mocov3_bcssl-t-k9.py',
    '../_base_/datasets/shapes_bs32_mocov3.py',
    '../_base_/datasets/shapes_cls_knn.py',
    '../_base_/schedules/mocov3_adamw_coslr_300e.py',
    '../_base_/default_runtime.py',
]

hidden, out_dim = 512, 128
model = dict(
    backbone=dict(arch='atto', dw_norm_cfg=dict(type='BN')),
    neck=dict(
        in_channels=320,
        hid_channels=hidden,
        out_channels=out_dim,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        predictor=dict(
            in_channels=out_dim,
            hid_channels=hidden,
            out_channels=out_dim,
            norm_cfg=dict(type='BN1d'))))

optim_wrapper = dict(optimizer=dict(lr=1e-3))

max_epochs = 10
warmup_epochs = 1
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
custom_hooks = [
    dict(type='MoCoV3Hook', momentum=0.99, end_momentum=1.),
    dict(type='RNGStateHook'),
    # a copy of knn_data: set the hook's own data roots to move it
    dict(
        type='KNNMonitorHook',
        data=_base_.knn_data,
        interval=5,
        k=20,
        batch_size=64)
]
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=32)
