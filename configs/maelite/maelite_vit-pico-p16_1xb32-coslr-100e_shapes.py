# Demo: MAE pretraining of a small ViT ('pico': 96 wide, 6 blocks, 6 heads
# of 16 dims as MAE-Tiny's; decoder 48 wide, 1 block, 3 heads) on the 200
# generated shapes images, on CPU in about a minute: the MAE-Lite recipe's
# bases (mask ratio 0.75, normalised pixels, AdamW (0.9, 0.95), wd 0.05)
# scaled down: 96-px crops (6 x 6 patches), batch 32, 100 epochs (600
# iterations) with 10 warm-up epochs, fp32, one process, lr 1.5e-3 (the
# linear rule gives 1.9e-5 for 32 images, too little for 600 iterations).
# `make demo-maelite` runs it, MAE-pretrains the larger teacher
# (maelite_vit-nano-p16_1xb32-coslr-100e_shapes.py), distils it into the same
# small ViT (dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py), and evaluates
# all three with k-NN on data/shapes/cls.
_base_ = [
    '../_base_/models/maelite_vit-tiny-p16.py',
    '../_base_/datasets/shapes_bs32_mae.py',
    '../_base_/schedules/mae_adamw_coslr_400e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=96, num_layers=6, num_heads=6,
            feedforward_channels=384),
        img_size=96),
    neck=dict(
        num_patches=36,
        embed_dim=96,
        decoder_embed_dim=48,
        decoder_num_heads=3))

optim_wrapper = dict(optimizer=dict(lr=1.5e-3))
max_epochs = 100
warmup_epochs = 10
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
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=10, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=32)
