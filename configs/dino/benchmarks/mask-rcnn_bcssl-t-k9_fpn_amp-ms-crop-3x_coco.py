# Mask R-CNN 3x on COCO with a DINO-pretrained BC-SSL-T (k9) backbone: paper
# §4.2 / Table 4 ("hyperparameters exactly the same as supervised ConvNeXt").
# The recipe is mmdet's ConvNeXt-T Mask R-CNN 3x config, which matches
# ConvNeXt's own: AdamW lr 1e-4, wd 0.05, layer-wise lr decay 0.95 over
# num_layers 6 (mmdet's LearningRateDecayOptimizerConstructor, which logs the
# parameter groups - layer id, lr scale, weight decay - at start-up), drop
# path 0.4, layer scale 1.0, AMP, multi-scale + crop training, 36 epochs
# (= 3 x 12) with lr x0.1 at 27 and 33, batch 16 = 8 x 2.
#
# Train (CONFIG: this file, or configs/maskrcnn_bcssl_t_3x.py, its old path):
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=TEACHER.pth
# The checkpoint is loaded strictly: missing, unexpected or mis-shaped backbone
# keys stop the run with a list of them.
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'  # noqa: E501

custom_imports = dict(
    imports=['mmpretrain.models', 'bcssl_mm'], allow_failed_imports=False)

# the one key to override: a backbone checkpoint (DINO teacher, keys
# 'backbone.*'); the 100-epoch and 300-epoch rows of Table 4 differ only here
pretrained = 'checkpoints/bcssl-t_dino_teacher.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='BCSSLConvNeXt',
        arch='tiny',
        kernel_size=9,
        # batch statistics over all 16 images; use BN on a single device
        dw_norm_cfg=dict(type='SyncBN'),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

# exact resume: RNG states go into checkpoints
custom_hooks = [dict(type='RNGStateHook')]

# the recipe's lr 1e-4 is for 16 images (8 GPUs x 2); --auto-scale-lr
# rescales it to the real batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
