# Demo baseline: the linear probe of
# bcssl-atto-k9_linear-1xb64-coslr-30e_shapes.py (this directory) on a
# randomly initialised BC-SSL atto, with the backbone's default
# initialisation (the DINO demo's starting point), to compare the DINO
# teacher with. The result is named random_bcssl-atto-k9_init_shapes.
#
# The ImageNet recipe scaled to the shapes classification split: 96-px crops
# (configs/_base_/datasets/shapes_bs64_linear.py), 3 classes, top-1 only.
# Schedule: 30 epochs of 5 iterations (300 images / 64) with lr 0.1, under a
# minute on 2 CPU cores. The protocol's lr rule (0.001 x 64 / 256) would
# move the head little in 150 steps; 0.1 is the lr that
# tools/benchmarks/linear_probe_features.py picked (0.001 to 10) on the DINO
# teacher's centre-crop features of this split.
_base_ = [
    '../../_base_/models/linear-probe_bcssl-t-k9.py',
    '../../_base_/datasets/shapes_bs64_linear.py',
    '../../_base_/schedules/sgd_coslr_100e_linear.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    data_preprocessor=dict(num_classes=3),
    backbone=dict(arch='atto'),
    head=dict(num_classes=3, in_channels=320, topk=(1, )))

optim_wrapper = dict(optimizer=dict(lr=0.1))
auto_scale_lr = dict(base_batch_size=64)
max_epochs = 30
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(
        type='LinearProbeResultHook',
        pretrain_name='random_bcssl-atto-k9_init_shapes')
]
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
