# Table 1 baseline: linear probe of the 100-epoch DINO ViT-S/16
# (configs/dino/dino_vit-s-p16_8xb64-amp-coslr-100e_in1k.py). Features: the
# [CLS] token after the final norm (384-d), the backbone's own output and the
# one DINO pretrains and the k-NN uses.
# NOTE: official DINO's eval_linear.py feeds ViT-S the [CLS] tokens of the
# last 4 blocks concatenated (1536-d, --n_last_blocks 4); the paper does not
# say which it used. This config keeps one pooled feature for every backbone.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_vit-s-p16_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=384))
