# SelfPatch pretraining of ViT-S/16 on ImageNet-1K with the official recipe
# (docs/recipes.md §9; alinlab/SelfPatch README command and main_selfpatch.py
# defaults): 8 GPUs x 128 images = 1024, 2 global 224-px crops of scale
# (0.25, 1) and 8 local 96-px crops of scale (0.05, 0.25), AdamW lr
# 5e-4 x 1024 / 256 with 10 warm-up epochs and cosine decay to 1e-6, weight
# decay 0.04 -> 0.4, per-tensor clipping at 3.0, teacher momentum 0.996 -> 1,
# teacher temperature 0.04 without warm-up, last layers frozen in the first
# epoch, AMP. 200 epochs, the paper's; official main_selfpatch.py defaults to
# 300 (--epochs).
#
# Train:
#   tools/dist_train.sh \
#       configs/selfpatch/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off (the teacher's backbone, checked strictly against this config):
#   WORK=work_dirs/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k
#   python tools/model_converters/extract_backbone.py \
#       $WORK/epoch_200.pth \
#       checkpoints/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.pth \
#       --config configs/selfpatch/$(basename $WORK).py
# then configs/selfpatch/benchmarks/ (Mask R-CNN, linear probe) load it.
_base_ = [
    '../_base_/models/selfpatch_bcssl-t-k9.py',
    '../_base_/datasets/imagenet_bs64_dino.py',
    '../_base_/schedules/dino_adamw_coslr_100e.py',
    '../_base_/default_runtime.py',
]

# ViT-S/16 as official SelfPatch builds it: DINO's ViT-S (6 heads) without a
# CLS token and without a final norm (the LayerNorm is the aggregator's); the
# aggregator's learned token, pooled over the patches, is the image token
# (it replaces the CLS token), and the student's patches are its tokens
# normed. norm_last_layer=True is main_selfpatch.py's default, which the
# README command keeps.
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,  # student only; the teacher has none
        with_cls_token=False,
        out_type='featmap',  # (N, 384, H / 16, W / 16): the patch tokens
        final_norm=False),
    patch_index=-1,
    image_token='class_attention',
    student_patches='norm',
    neck=dict(in_channels=384, norm_last_layer=True),
    patch_neck=dict(in_channels=384, norm_last_layer=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='DINOMultiCrop',
        global_crop_size=224,
        local_crop_size=96,
        global_crops_scale=(0.25, 1.),
        local_crops_scale=(0.05, 0.25),
        num_local_crops=8),
    dict(type='PackInputs')
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='DINOAmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(lr=0.0005 * 1024 / 256))

max_epochs = 200
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(
        type='DINOHook',
        momentum=0.996,
        end_momentum=1.,
        warmup_teacher_temp=0.04,
        teacher_temp=0.04,
        warmup_teacher_temp_epochs=0,  # main_selfpatch.py's default
        freeze_last_layer_epochs=1),
    dict(type='RNGStateHook'),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))

# lr above is for 1024 images; --auto-scale-lr rescales to the real batch
auto_scale_lr = dict(base_batch_size=1024)
