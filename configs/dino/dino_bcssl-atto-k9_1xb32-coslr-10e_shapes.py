# Demo: DINO pretraining of a tiny BC-SSL ('atto' widths 40-320, k9, BN) on
# the 200 generated shapes images (tools/data/make_shapes_coco.py; labels
# unused), on CPU in a few minutes. It composes the BC-SSL-T recipe's bases
# and scales them down: smaller crops (global 96 px, local 48 px, 4 local
# crops), a smaller projection head, 10 epochs (60 iterations) with 1 warm-up
# epoch, fp32, one process. For so short a run on 200 images three values
# differ from the recipe: lr 5e-4 (4x the scaled rule), teacher momentum 0.99
# (with 0.996 the teacher would stay close to its initialisation) and teacher
# temperature 0.04 throughout with 256 prototypes (with 0.07 and 4096 the
# outputs collapsed to uniform: the loss went to ln 4096 and stayed there).
# `make demo` then fine-tunes Mask R-CNN from its teacher
# (configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py).
# The teacher's k-NN top-1 on the labelled shapes (data/shapes/cls, 300 bank
# / 150 query images) is logged every 5 epochs (KNNMonitorHook).
_base_ = [
    '../_base_/models/dino_bcssl-t-k9.py',
    '../_base_/datasets/shapes_bs32_dino.py',
    '../_base_/datasets/shapes_cls_knn.py',
    '../_base_/schedules/dino_adamw_coslr_100e.py',
    '../_base_/default_runtime.py',
]

out_dim = 256
model = dict(
    backbone=dict(arch='atto', dw_norm_cfg=dict(type='BN')),
    neck=dict(
        in_channels=320,
        out_channels=out_dim,
        hidden_channels=512,
        bottleneck_channels=128),
    head=dict(loss=dict(out_dim=out_dim)))

optim_wrapper = dict(optimizer=dict(lr=5e-4))

max_epochs = 10
warmup_epochs = 1
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-9,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingWeightDecay',
        eta_min=0.4,
        by_epoch=True,
        begin=0,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(
        type='DINOHook',
        momentum=0.99,
        end_momentum=1.,
        warmup_teacher_temp=0.04,
        teacher_temp=0.04,
        warmup_teacher_temp_epochs=1,
        freeze_last_layer_epochs=1),
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
