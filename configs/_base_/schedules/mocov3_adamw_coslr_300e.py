# Official MoCo v3's ViT schedule (docs/recipes.md §8) for 4096 images per
# step: AdamW, lr 1.5e-4 x 4096 / 256 = 2.4e-3, weight decay 0.1 on every
# parameter (official `torch.optim.AdamW(model.parameters(), ...)`), 40
# linear warm-up epochs then cosine to 0, 300 epochs; momentum 0.99 ->
# 1, cosine per iteration. fp32; an `-amp-` config sets
# optim_wrapper.type='AmpOptimWrapper' and loss_scale='dynamic'.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.999),
        weight_decay=0.1),
    constructor='SelfSupOptimWrapperConstructor')  # base encoder only

max_epochs = 300
warmup_epochs = 40
param_scheduler = [
    # official MoCo v3's lr x t / warm-up iterations from 0; LinearLR needs a
    # factor > 0 and starts at 1e-4 x lr
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
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

custom_hooks = [
    dict(type='MoCoV3Hook', momentum=0.99, end_momentum=1.),
    # exact resume of augmentations
    dict(type='RNGStateHook'),
]

# lr above is for 4096 images; --auto-scale-lr rescales to the real batch
auto_scale_lr = dict(base_batch_size=4096)
