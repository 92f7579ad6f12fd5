# Mask R-CNN 3x on COCO from the SelfPatch BC-SSL-T (k9) teacher: the paper's
# Table 4 recipe of configs/dino/benchmarks/ (all four stages, FPN, AMP,
# multi-scale crop, 36 epochs), only the checkpoint differs, so that the
# table compares the pretrainings. The checkpoint's stage-3 and stage-4
# output norms (norm2, norm3) are the FPN inputs' norms here.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=TEACHER.pth
_base_ = ('../../dino/benchmarks/'
          'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py')

pretrained = 'checkpoints/selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
