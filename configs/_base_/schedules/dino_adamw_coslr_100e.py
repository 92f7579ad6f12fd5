# Official DINO's schedule for 512 images per step (docs/recipes.md §2), in
# fp32;
# an `-amp-` config sets optim_wrapper.type='DINOAmpOptimWrapper' and
# loss_scale='dynamic'. 100 epochs.

# lr = 0.0005 * 512 / 256; weight decay on weights only (biases and 1-D
# parameters: none); per-tensor clipping at 3.0
optim_wrapper = dict(
    type='DINOOptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=0.0005 * 512 / 256,
        betas=(0.9, 0.999),
        weight_decay=0.04),
    clip_grad=dict(type='per_tensor', max_norm=3.0),
    constructor='DINOOptimWrapperConstructor',  # the student's parameters
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))

max_epochs = 100
warmup_epochs = 10
# schedules without an `end` run to the end of training (mmengine's Runner
# sets it to max_epochs), so a config that only changes max_epochs keeps them
param_scheduler = [
    # DINO's np.linspace(0, lr, warmup iters); LinearLR needs a factor > 0
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
    # 0.04 -> 0.4, cosine per iteration; zero-decay groups stay at zero
    dict(
        type='CosineAnnealingWeightDecay',
        eta_min=0.4,
        by_epoch=True,
        begin=0,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

custom_hooks = [
    dict(
        type='DINOHook',
        momentum=0.996,  # cosine to 1 over all iterations
        end_momentum=1.,
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=30,
        freeze_last_layer_epochs=1),
    # exact resume of augmentations and drop-path masks
    dict(type='RNGStateHook'),
    # the paper's k-NN monitor (Appendix A.1, Fig. 3: ImageNet k-NN of the
    # teacher every 20 epochs; a pass over train + val each time) is off; to
    # turn it on, add '../_base_/datasets/imagenet_knn.py' to a config's
    # _base_ and this line to its custom_hooks:
    # dict(type='KNNMonitorHook', data=_base_.knn_data, interval=20),
]

# lr above is for 512 images; --auto-scale-lr rescales to the real batch
auto_scale_lr = dict(base_batch_size=512)
