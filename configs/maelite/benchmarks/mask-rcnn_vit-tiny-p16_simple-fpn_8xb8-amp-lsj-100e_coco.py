# Mask R-CNN on COCO from the 400-epoch MAE-Tiny encoder: the toolkit's
# ViT-Tiny transfer recipe (ViTDet's simple feature pyramid, LSJ at 1024,
# 100 epochs, AdamW lr 1e-4, wd 0.1, layer decay 0.7, drop path 0.1; see the
# headers of the base and of its ViT-S parent) with MAE-Tiny's backbone:
# 12 heads of 16 dims (the base's DeiT-Tiny has 3 heads of 64, the same
# parameter shapes, so only the config can tell), and the pretraining's
# final norm ln1 before the pyramid. The checkpoint is loaded strictly.
#
# NOTE: official MAE-Lite transfers with detectron2's ViTDet at 640 px
# (projects/eval_tools/det/mask_rcnn_vitdet_t_100ep_mae.py: windowed
# attention, drop path 0, no layer decay, wd 0.05; 39.9 box / 35.4 mask
# AP). This config keeps the toolkit's recipe so that MAE-Tiny compares
# with the other ViT-Tiny rows; their values are overrides, e.g.
#   --cfg-options model.backbone.drop_path_rate=0. \
#       optim_wrapper.paramwise_cfg.layer_decay_rate=1. \
#       optim_wrapper.optimizer.weight_decay=0.05
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ('../../mocov3/benchmarks/'
          'mask-rcnn_vit-tiny-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py')

# the encoder of the MAE-Tiny pretraining (keys 'backbone.*'), named after
# its config
pretrained = 'checkpoints/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.pth'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # a dict replacing the base's arch name
            embed_dims=192,
            num_layers=12,
            num_heads=12,
            feedforward_channels=192 * 4),
        init_cfg=dict(checkpoint=pretrained)))
