# Mask R-CNN 3x on COCO with a MoCo v3-pretrained BC-SSL-T (k9) backbone: the
# DINO row's config (../../dino/benchmarks/
# mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py: mmdet's ConvNeXt-T Mask
# R-CNN 3x recipe) with the base encoder of
# configs/mocov3/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py, extracted
# with tools/model_converters/extract_backbone.py (default part: base).
_base_ = ('../../dino/benchmarks/'
          'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py')

pretrained = 'checkpoints/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
