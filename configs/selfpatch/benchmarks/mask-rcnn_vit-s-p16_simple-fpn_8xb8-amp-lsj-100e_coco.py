# Mask R-CNN on COCO from the SelfPatch ViT-S/16 teacher: the toolkit's ViT
# transfer recipe (ViTDet's simple feature pyramid, LSJ, 100 epochs; see the
# header of the base config), with SelfPatch's ViT-S: DeiT-S / DINO's 6
# heads, no CLS token and no final norm (the pretraining's LayerNorm belongs
# to the class-attention aggregator, which transfer drops); the pyramid's
# LayerNorms follow the last block directly. Official SelfPatch reports COCO
# Mask R-CNN 1x with an XCiT-style multi-scale adapter (42.1 box / 38.5 mask
# vs DINO 40.8 / 37.3, docs/recipes.md §9), a different detector recipe.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=TEACHER.pth
_base_ = ('../../mocov3/benchmarks/'
          'mask-rcnn_vit-s-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py')

# the one key to override: the extracted teacher backbone
pretrained = 'checkpoints/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.pth'
model = dict(
    backbone=dict(
        arch='deit-small',
        with_cls_token=False,
        final_norm=False,
        init_cfg=dict(checkpoint=pretrained)))
