# Mask R-CNN R50-FPN 3x on COCO from a self-supervised ResNet-50 (the MoCo v3
# base encoder by default; a DINO ResNet-50 teacher loads the same way).
# Recipe: mmdet's multi-scale 3x R50-FPN config
# (mmdet::mask_rcnn/mask-rcnn_r50_fpn_ms-poly-3x_coco.py: SGD lr 0.02,
# momentum 0.9, wd 1e-4, batch 16 = 8 x 2, shorter side 640-800, 36 epochs =
# 3 x 12 with lr x0.1 at 27 and 33) with the changes of self-supervised
# detection transfer (MoCo, He et al. 2020, https://arxiv.org/abs/1911.05722
# §4.2 and its detectron2 configs, facebookresearch/moco
# detection/configs/Base-RCNN-C4-BN.yaml: FREEZE_AT 0, NORM SyncBN):
# every stage is trained (frozen_stages -1), BatchNorm is trained and
# synchronised across GPUs (norm_eval False, SyncBN) in the backbone and in
# the FPN, since a self-supervised backbone's BN statistics are not those of
# supervised fine-tuning. MoCo v3 itself published no detection results for
# ResNet-50.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
# The checkpoint is loaded strictly: missing, unexpected or mis-shaped backbone
# keys stop the run with a list of them. SyncBN needs GPUs; on one device set
# model.backbone.norm_cfg.type=BN model.neck.norm_cfg.type=BN.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_ms-poly-3x_coco.py'

custom_imports = dict(
    imports=['mmpretrain.models', 'bcssl_mm'], allow_failed_imports=False)

# the one key to override: a backbone checkpoint (keys 'backbone.*', from
# tools/model_converters; MoCo v3: the base encoder)
pretrained = 'checkpoints/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.pth'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        # mmpretrain's ResNet, the pretraining class: its keys match
        type='StrictResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        style='pytorch',
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(norm_cfg=norm_cfg))

# exact resume: RNG states go into checkpoints
custom_hooks = [dict(type='RNGStateHook')]

# lr 0.02 is for 16 images (8 GPUs x 2); --auto-scale-lr rescales it to the
# real batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
