# Table 4 row "300-ep DINO Swin-T" (paper: box 46.2 / 67.9 / 50.5, mask
# 41.7 / 64.8 / 45.1): Mask R-CNN 3x on COCO with the toolkit's DINO Swin-T
# teacher. The recipe is mmdet's Swin-T Mask R-CNN 3x config
# (mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py, the Swin
# authors' own): AdamW lr 1e-4, wd 0.05 with none on the relative position
# bias tables and the norms, drop path 0.2, AMP, multi-scale + crop training,
# 36 epochs (= 3 x 12) with lr x0.1 at 27 and 33, batch 16 = 8 x 2.
# The backbone is mmpretrain's SwinTransformer (the pretraining class of
# configs/dino/dino_swin-t_8xb64-amp-coslr-100e_in1k.py), not mmdet's, so the
# teacher's 'backbone.*' keys match without conversion; mmdet's
# paramwise_cfg keys ('relative_position_bias_table', 'norm') match its
# parameter names too.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=TEACHER.pth
# The checkpoint is loaded strictly: missing, unexpected or mis-shaped backbone
# keys stop the run with a list of them (the output norms norm0-norm2, which a
# DINO backbone lacks, start from their default initialisation).
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'

custom_imports = dict(
    imports=['mmpretrain.models', 'bcssl_mm'], allow_failed_imports=False)

# the one key to override: a backbone checkpoint (DINO teacher, keys
# 'backbone.*', from tools/model_converters)
pretrained = 'checkpoints/dino_swin-t_8xb64-amp-coslr-300e_in1k.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='StrictSwinTransformer',
        arch='tiny',  # 96 wide, depths (2, 2, 6, 2), heads (3, 6, 12, 24)
        img_size=224,
        patch_size=4,
        window_size=7,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        # pad maps smaller than a window instead of shrinking the window, as
        # mmdet's Swin does (and as the DINO pretraining config)
        pad_small_map=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

# exact resume: RNG states go into checkpoints
custom_hooks = [dict(type='RNGStateHook')]

# the recipe's lr 1e-4 is for 16 images (8 GPUs x 2); --auto-scale-lr
# rescales it to the real batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
