# Table 4 kernel ablation: BC-SSL-T with 5x5 depthwise kernels (100-epoch
# DINO). Everything else is the k9 config; pass the k5 teacher checkpoint
# with --cfg-options model.backbone.init_cfg.checkpoint=...
_base_ = './mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'

model = dict(backbone=dict(kernel_size=5))
