# Linear probe of the SelfPatch ViT-S/16 teacher on ImageNet-1K: the DINO
# linear protocol of configs/dino/benchmarks/ (frozen backbone, one linear
# layer, 100 epochs). SelfPatch's ViT has no CLS token and no final norm, so
# the feature is the average of the last block's patch tokens
# (GlobalAveragePooling on the (N, 384, 14, 14) map), the same feature k-NN
# reads (tools/benchmarks/knn_eval.py with the pretraining config).
_base_ = '../../dino/benchmarks/vit-s-p16_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.pth'
model = dict(
    backbone=dict(
        with_cls_token=False,
        out_type='featmap',
        final_norm=False,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(type='GlobalAveragePooling'))
