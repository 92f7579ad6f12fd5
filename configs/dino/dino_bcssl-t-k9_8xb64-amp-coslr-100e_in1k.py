# DINO pretraining of BC-SSL-T (k9) on ImageNet-1K, 100 epochs: the paper's
# ablation recipe (§3.2, §4.1; RECIPES.md §2), official DINO's defaults
# otherwise. 8 GPUs x 64 images, AMP, SyncBN after the depthwise convs.
#
# Train:  tools/dist_train.sh configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py 8 \
#             --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off: python tools/model_converters/extract_dino_backbone.py \
#             work_dirs/<this config>/epoch_100.pth checkpoints/bcssl-t_dino_teacher.pth
# then configs/dino/benchmarks/mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py
# loads it.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['bcssl_mm'], allow_failed_imports=False)

# the one key to override: ImageNet in mmpretrain's layout (train/<class>/*);
# any image folder works with dataset type CustomDataset, with_label=False
data_root = 'data/imagenet/'

# 2 global 224-px crops, scale (0.4, 1); 8 local 96-px crops, scale
# (0.05, 0.4); flip, colour jitter, grayscale, per-crop blur and solarize
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=224,
        local_crop_size=96,
        global_crops_scale=(0.4, 1.),
        local_crops_scale=(0.05, 0.4),
        num_local_crops=8),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64,  # per GPU; 512 in total
    num_workers=10,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        split='train',
        with_label=False,  # labels unused (and no 1000-folder check)
        pipeline=train_pipeline))

out_dim = 65536
model = dict(
    type='DINO',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='BCSSLConvNeXt',
        arch='tiny',
        kernel_size=9,
        # one-process / CPU runs: dict(type='BN') (SyncBN needs GPUs)
        dw_norm_cfg=dict(type='SyncBN'),
        drop_path_rate=0.1,  # student only; the teacher has none
        out_indices=-1,
        gap_before_final_norm=True),
    neck=dict(
        type='DINONeck',
        in_channels=768,
        out_channels=out_dim,
        hidden_channels=2048,
        bottleneck_channels=256,
        num_layers=3,
        norm_last_layer=False),  # paper: "for stability"
    head=dict(
        type='DINOHead',
        loss=dict(
            type='DINOLoss',
            out_dim=out_dim,
            student_temp=0.1,
            center_momentum=0.9)))

# lr = 0.0005 * 512 / 256; weight decay on weights only (biases and 1-D
# parameters: none); per-tensor clipping at 3.0
optim_wrapper = dict(
    type='DINOAmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=0.0005 * 512 / 256, betas=(0.9, 0.999),
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
    dict(type='RNGStateHook')
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))

randomness = dict(seed=0)
# lr above is for 512 images; --auto-scale-lr rescales to the real batch
auto_scale_lr = dict(base_batch_size=512)
