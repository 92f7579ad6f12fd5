# Mask R-CNN on COCO from a self-supervised ViT-Tiny/16 (DeiT-Tiny: 192 wide,
# 12 layers, 3 heads), with ViTDet's simple feature pyramid: the ViT-S/16
# config's recipe (ViTDet's, see its header) with the Tiny backbone. ViTDet
# publishes no Tiny recipe; with 12 blocks, as ViT-B, it keeps ViT-B's layer
# decay 0.7 and drop path 0.1, and the pyramid and heads stay 256 wide. This
# is the base config for any tiny ViT (e.g. MAE-Lite) to inherit.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = './mask-rcnn_vit-s-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py'

# the one key to override: a backbone checkpoint (keys 'backbone.*'); the
# toolkit has no ViT-Tiny pretraining config yet, so this path is a name to
# replace, not the output of one of its runs
pretrained = 'checkpoints/vit-tiny-p16_pretrained.pth'

model = dict(
    backbone=dict(arch='deit-tiny', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=192))
