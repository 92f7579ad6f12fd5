# MAE-Lite's pretraining schedule for 4096 images per step (docs/recipes.md
# §10; official projects/mae_lite/mae_lite_exp.py): AdamW, betas (0.9, 0.95),
# lr 1.5e-4 x 4096 / 256, weight decay 0.05 on weights only (biases and 1-D
# parameters: none; the class and mask tokens are decayed, as official), no
# clipping; 40 warm-up epochs from 0, then cosine to 0, per iteration; 400
# epochs; in fp32 (an `-amp-` config sets type='AmpOptimWrapper' and
# loss_scale='dynamic').
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05),
    # the trained parameters only (a D-MAE-Lite teacher is left out)
    constructor='SelfSupOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))

max_epochs = 400
warmup_epochs = 40
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
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# exact resume of the masks and crops
custom_hooks = [dict(type='RNGStateHook')]

# lr above is for 4096 images; --auto-scale-lr rescales to the real batch
auto_scale_lr = dict(base_batch_size=4096)
