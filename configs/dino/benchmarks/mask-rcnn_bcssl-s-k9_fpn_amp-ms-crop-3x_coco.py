# Mask R-CNN 3x with BC-SSL-S (k9). ConvNeXt published Mask R-CNN recipes only
# for T; for S it published Cascade Mask R-CNN 3x, whose S-specific values are
# used here: drop path 0.6, lr 2e-4, layer decay 0.7 over num_layers 12 (stage
# 3 has 27 blocks: ids 3 + b // 3 reach 11).
_base_ = './mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'

pretrained = 'checkpoints/bcssl-s_dino_teacher.pth'

model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.6, init_cfg=dict(
            checkpoint=pretrained)))

optim_wrapper = dict(
    paramwise_cfg=dict(decay_rate=0.7, num_layers=12), optimizer=dict(lr=2e-4))
